"""The trainer's hooks: a user hook sees the events in order, misspelt events raise, the schedule resumes exactly,
TensorBoard gets the scalars and images."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import train as train_script
from engine.hooks import Hook, UnknownEventError, default_hooks
from engine.hyperparameters import HYP_DIR
from engine.train_options import TrainOptions
from engine.trainer import Trainer, train
from tests.helpers import Interrupted, interrupt_after_first_epoch, tiny_train_options
from utils.checkpoint import load_checkpoint


def options(data: Path, project: Path, **overrides) -> TrainOptions:
    return tiny_train_options(data, project, **overrides)


class EventRecorder(Hook):
    """Records every event with the epoch, and what the default hooks earlier in the list left behind."""

    def __init__(self) -> None:
        self.events: list[tuple[str, int]] = []
        self.seen_after_epoch: list[tuple[bool, bool]] = []

    def before_train(self, trainer: Trainer) -> None:
        self.events.append(("before_train", trainer.epoch))

    def before_epoch(self, trainer: Trainer) -> None:
        self.events.append(("before_epoch", trainer.epoch))

    def before_step(self, trainer: Trainer) -> None:
        self.events.append(("before_step", trainer.epoch))

    def before_optimizer_step(self, trainer: Trainer) -> None:
        self.events.append(("before_optimizer_step", trainer.epoch))

    def after_optimizer_step(self, trainer: Trainer) -> None:
        self.events.append(("after_optimizer_step", trainer.epoch))

    def after_step(self, trainer: Trainer) -> None:
        self.events.append(("after_step", trainer.epoch))

    def after_epoch(self, trainer: Trainer) -> None:
        self.events.append(("after_epoch", trainer.epoch))
        last = load_checkpoint(trainer.weights_dir / "last.pt")
        # evaluation and checkpoint hooks ran before this one: metrics measured and saved with this epoch
        self.seen_after_epoch.append(("fitness" in trainer.metrics, last["epoch"] == trainer.epoch))

    def after_train(self, trainer: Trainer) -> None:
        self.events.append(("after_train", trainer.epoch))


def test_user_hook_sees_events_in_order(tiny_data: Path, tmp_path: Path) -> None:
    recorder = EventRecorder()
    train(options(tiny_data, tmp_path, epochs=2), hooks=[*default_hooks(), recorder])
    batches = 2  # 4 images, batch 2
    step = ["before_step", "before_optimizer_step", "after_optimizer_step", "after_step"]
    expected = [("before_train", 0)]
    for epoch in range(2):
        steps = [(event, epoch) for _ in range(batches) for event in step]
        expected += [("before_epoch", epoch), *steps, ("after_epoch", epoch)]
    expected.append(("after_train", 1))
    assert recorder.events == expected
    assert recorder.seen_after_epoch == [(True, True), (True, True)]


def test_misspelt_events_raise(tiny_data: Path, tmp_path: Path) -> None:
    class Misspelt(Hook):
        def after_setp(self, trainer: Trainer) -> None: ...

    with pytest.raises(UnknownEventError, match=r"Misspelt.after_setp: .*did you mean after_step\?"):
        Trainer(options(tiny_data, tmp_path), hooks=[Misspelt()])
    with pytest.raises(UnknownEventError, match="did you mean after_epoch"):
        Trainer(options(tiny_data, tmp_path), callbacks={"after_epochs": [print]})
    trainer = Trainer(options(tiny_data, tmp_path), hooks=[])
    with pytest.raises(UnknownEventError, match="did you mean before_train"):
        trainer.add_callback("before_trian", print)
    with pytest.raises(TypeError, match="Hook instances"):
        trainer.register_hooks(print)
    assert len(trainer.hooks) == 0 and Hook().handlers() == {}  # the base class handles nothing


def test_resume_continues_the_schedule_after_warmup(tiny_data: Path, tmp_path: Path) -> None:
    # Without warm-up every epoch's rate comes from the scheduler, so an epoch counter restored one behind shows
    # in the third epoch's rate and weights.
    hyp = yaml.safe_load((HYP_DIR / "hyp.scratch-dfl.yaml").read_text())
    hyp_file = tmp_path / "no_warmup.yaml"
    hyp_file.write_text(yaml.safe_dump({**hyp, "warmup_epochs": 0.0, "lrf": 0.01}))
    common = dict(epochs=3, hyp=str(hyp_file), noval=True, close_mosaic=0, batch_size=4, nbs=4)
    straight = train(options(tiny_data, tmp_path, name="straight", **common))
    with pytest.raises(Interrupted):
        train(
            options(tiny_data, tmp_path, name="interrupted", **common),
            callbacks={"after_epoch": [interrupt_after_first_epoch]},
        )
    resumed = train(TrainOptions(resume=str(tmp_path / "interrupted" / "weights" / "last.pt")))

    def lr_column(run: Path) -> list[str]:
        rows = [r.split(",") for r in (run / "results.csv").read_text().split()]
        return [r[rows[0].index("lr/pg1")] for r in rows[1:]]

    assert lr_column(resumed) == lr_column(straight)
    assert len(set(lr_column(straight))) == 3  # three different rates: the schedule moved every epoch
    a = load_checkpoint(straight / "weights" / "last.pt")["model"]
    b = load_checkpoint(resumed / "weights" / "last.pt")["model"]
    assert all(a[k].equal(b[k]) for k in a)


def test_tensorboard_events_from_train_py(tiny_data: Path, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    # train.py's main in this process: the script as a process is run by test_train.py's DDP test and
    # test_fault_concurrent_runs.py; another interpreter here would only repeat the imports
    argv = ["--cfg", "yolo11n.yaml", "--epochs", "1", "--imgsz", "64"]
    argv += ["--data", str(tiny_data), "--batch-size", "4", "--project", str(tmp_path), "--device", "cpu"]
    assert train_script.main(argv) == 0
    run = tmp_path / "exp"
    assert list(run.glob("events.out.tfevents.*"))
    events = EventAccumulator(str(run)).Reload()
    scalars = set(events.Tags()["scalars"])
    for name in ("train/box_loss", "train/cls_loss", "train/dfl_loss", "val/box_loss", "lr/pg0", "lr/pg2"):
        assert name in scalars, (name, scalars)
    for name in ("metrics/precision", "metrics/recall", "metrics/mAP50", "metrics/mAP50-95"):
        assert name in scalars, (name, scalars)
    csv_rows = (run / "results.csv").read_text().split()
    header, values = csv_rows[0].split(","), csv_rows[1].split(",")
    logged = events.Scalars("train/box_loss")
    assert [e.step for e in logged] == [0]
    assert logged[0].value == pytest.approx(float(values[header.index("train/box_loss")]), rel=1e-4)
    assert {"labels", "train_batch0"} <= set(events.Tags()["images"])
