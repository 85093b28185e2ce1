"""Knowledge distillation (--teacher): a distilled run trains, logs a finite `distill` loss and resumes exactly
(adapters included); the loss falls on a fixed batch; a teacher of other classes stops with one line; heads of
different families distil features only."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import train as train_script
from engine.hooks import DistillationHook, Hook, default_hooks
from engine.hooks.distillation import STATE_KEY, adopt_teacher_anchors, plan_distillation
from engine.train_options import TrainOptions
from engine.trainer import Trainer, train
from models.detection_model import DetectionModel
from tests.engine_helpers import make_checkpoint
from tests.helpers import Interrupted, interrupt_after_first_epoch, tiny_train_options
from utils.checkpoint import load_checkpoint


def options(data: Path, project: Path, **overrides) -> TrainOptions:
    base = dict(cfg="yolo11n_mobilenetv4.yaml", noval=True, close_mosaic=0)
    return tiny_train_options(data, project, **{**base, **overrides})


def distill_column(run: Path) -> list[float]:
    rows = [r.split(",") for r in (run / "results.csv").read_text().split()]
    return [float(r[rows[0].index("train/distill_loss")]) for r in rows[1:]]


@pytest.fixture(scope="module")
def wide_teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random yolo11s checkpoint (wider neck than the n students: the adapters have work) of the tiny data's 2
    classes."""
    return make_checkpoint(tmp_path_factory.mktemp("teacher") / "yolo11s.pt", cfg="yolo11s.yaml", nc=2)


def test_distilled_run_logs_a_finite_loss_and_resumes_with_its_adapters(
    tiny_data: Path, tmp_path: Path, wide_teacher: Path
) -> None:
    with pytest.raises(Interrupted):
        train(
            options(tiny_data, tmp_path, name="distilled", epochs=2, teacher=str(wide_teacher), distill_weight=2.0),
            callbacks={"after_epoch": [interrupt_after_first_epoch]},
        )
    last = tmp_path / "distilled" / "weights" / "last.pt"
    first = load_checkpoint(last)
    assert first["train_args"]["teacher"] == str(wide_teacher) and first["train_args"]["distill_weight"] == 2.0
    state = first["hook_state"][STATE_KEY]
    assert {tuple(v.shape) for k, v in state["adapters"].items() if k.endswith("weight")} == {
        (128, 64, 1, 1),
        (256, 128, 1, 1),
        (512, 256, 1, 1),
    }  # yolo11n's neck (64/128/256) into yolo11s's (128/256/512)
    assert state["optimizer"]["state"]  # the adapters' optimiser has stepped (momentum buffers)

    hook = DistillationHook()
    restored = {}

    def record_restored(trainer: Trainer) -> None:  # after before_train: what the resumed hook starts from
        if not restored:
            restored["adapters"] = {k: v.clone() for k, v in hook.adapters.state_dict().items()}
            restored["buffers"] = [s["momentum_buffer"].clone() for s in hook.optimizer.state_dict()["state"].values()]

    hooks = [hook if isinstance(h, DistillationHook) else h for h in default_hooks()]
    resumed = train(TrainOptions(resume=str(last)), hooks=hooks, callbacks={"before_epoch": [record_restored]})
    assert all(restored["adapters"][k].equal(v) for k, v in state["adapters"].items())
    saved_buffers = [s["momentum_buffer"] for s in state["optimizer"]["state"].values()]
    assert len(restored["buffers"]) == len(saved_buffers) == 6  # a weight and a bias per adapter
    assert all(a.equal(b) for a, b in zip(saved_buffers, restored["buffers"]))
    losses = distill_column(resumed)  # the interrupted epoch's row and the resumed one's
    assert len(losses) == 2 and all(math.isfinite(v) and v > 0 for v in losses)
    final = load_checkpoint(last)["hook_state"][STATE_KEY]["adapters"]
    assert any(not final[k].equal(state["adapters"][k]) for k in final)  # and trained on


class DistillLossRecorder(Hook):
    def __init__(self) -> None:
        self.values: list[float] = []

    def after_step(self, trainer: Trainer) -> None:
        self.values.append(float(trainer.loss_items[-1]))


def test_distillation_loss_falls_on_a_fixed_batch(tiny_data: Path, tmp_path: Path) -> None:
    # anchor heads on both sides: the student takes the teacher's anchors and distils outputs and features
    teacher = make_checkpoint(tmp_path / "yolov5n.pt", cfg="yolov5n.yaml", nc=2, seed=1)
    hook, recorder = DistillationHook(), DistillLossRecorder()
    trainer = Trainer(
        options(tiny_data, tmp_path, cfg="yolov5n.yaml", teacher=str(teacher), optimizer="AdamW", epochs=1),
        hooks=[hook, recorder],
    )
    trainer.setup()
    trainer.num_batches = 10**6  # no epoch end: every batch is a step of its own
    trainer.fire("before_train")
    assert hook.plan.outputs == "anchor" and trainer.loss_names[-1] == "distill"
    student_anchors = trainer.model.head.anchors
    assert torch.equal(student_anchors, hook.teacher.head.anchors)
    trainer.model.train()
    trainer.fire("before_epoch")
    trainer.mean_losses = torch.zeros(len(trainer.loss_names))
    trainer._batches_in_mean, trainer._last_optimizer_step, trainer._backward_since_step = 0, -1, False
    batch = next(iter(trainer.train_loader))
    for i in range(8):
        trainer.batch_index = trainer.iteration = i
        trainer.run_step(batch)
        trainer.fire("after_step")
    values = recorder.values
    assert all(math.isfinite(v) for v in values)
    assert values[-1] < 0.8 * values[0], values


def test_teacher_of_other_classes_stops_with_one_line(
    tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    teacher = make_checkpoint(tmp_path / "three_classes.pt", cfg="yolov5n.yaml", nc=3)
    status = train_script.main(
        ["--cfg", "yolo11n.yaml", "--data", str(tiny_data), "--teacher", str(teacher), "--imgsz", "64"]
        + ["--epochs", "1", "--project", str(tmp_path / "runs"), "--cache", "ram", "--noplots"]
    )
    errors = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert status == 2
    assert len(errors) == 1 and errors[0].startswith(f"error: --teacher {teacher} predicts 3 classes, the student 2")
    assert str(tiny_data) in errors[0]


def test_heads_of_different_families_distil_features_only() -> None:
    plan = plan_distillation(DetectionModel("yolo11n.yaml", nc=2), DetectionModel("yolov5s.yaml", nc=2))
    assert plan.outputs is None and "head family (anchor) differs" in plan.why_no_outputs
    assert [(p.stride, p.student_channels, p.teacher_channels) for p in plan.levels] == [
        (8.0, 64, 128),
        (16.0, 128, 256),
        (32.0, 256, 512),
    ]


def test_anchor_student_takes_the_teachers_anchors() -> None:
    student, teacher = DetectionModel("yolov5n.yaml", nc=2), DetectionModel("yolov5n.yaml", nc=2)
    with torch.no_grad():
        teacher.head.anchors.mul_(1.5)
    assert plan_distillation(student, teacher).why_no_outputs == "the anchor heads' anchors differ"
    assert adopt_teacher_anchors(student, teacher) and torch.equal(student.head.anchors, teacher.head.anchors)
    assert plan_distillation(student, teacher).outputs == "anchor"
    assert not adopt_teacher_anchors(student, teacher)  # nothing left to change
