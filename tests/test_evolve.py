"""Hyperparameter search (`train.py --evolve N`) at tiny size: a study of 3 one-epoch trials on its SQLite file,
the best hyperparameters loadable by --hyp, reruns that resume (a killed trial re-run with its values), the pruning
hook stopping a trial when told to, and bad search-space files refused in one line."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState

import train as train_script
from engine.evolve import EvolveError, evolve_hyperparameters, with_hook_before
from engine.evolve_options import EvolveOptions
from engine.evolve_space import SearchSpaceError, load_search_space
from engine.hooks import CheckpointHook, EarlyStoppingHook, EvaluationHook, default_hooks
from engine.hooks.trial_pruning import TrialPruningHook
from engine.hyperparameters import load_hyperparameters
from engine.train_options import TrainOptions
from losses.dfl_loss import DFLLossHyp
from tests.helpers import tiny_train_options
from tests.synthetic_data import make_synthetic_dataset
from utils.checkpoint import load_checkpoint


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_dataset(tmp_path_factory.mktemp("evolve_data"), n_train=4, n_val=2, imgsz=64, nc=1)


def tiny_options(data: Path, project: Path, **overrides: object) -> TrainOptions:
    return tiny_train_options(data, project, **{"batch_size": 4, "nbs": 4, "epochs": 1, "name": "search", **overrides})


def load_study(evolve_dir: Path) -> optuna.Study:
    return optuna.load_study(study_name="search", storage=f"sqlite:///{evolve_dir / 'study.db'}")


def test_three_trials_best_hyp_and_resume(small_data: Path, tmp_path: Path) -> None:
    options = tiny_options(small_data, tmp_path)
    evolve_dir = tmp_path / "search"
    first = evolve_hyperparameters(options, EvolveOptions(evolve=2), heartbeat_s=1, grace_s=1)
    assert first.evolve_dir == evolve_dir and first.finished == 2 and (evolve_dir / "study.db").is_file()
    study = load_study(evolve_dir)
    trials = study.trials
    start = study.user_attrs["starting_hyp"]
    assert trials[0].params == {k: start[k] for k in trials[0].params}  # trial 0: the starting values
    assert trials[1].params != trials[0].params

    # a trial left RUNNING by a kill (its heartbeat stops): the rerun fails it once stale and re-runs its values
    killed = study.ask(fixed_distributions=trials[1].distributions)
    study._storage.record_heartbeat(killed._trial_id)
    time.sleep(1.5)
    result = evolve_hyperparameters(options, EvolveOptions(evolve=3), heartbeat_s=1, grace_s=1)
    trials = load_study(evolve_dir).trials
    assert result.finished == 3
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2 + [TrialState.FAIL, TrialState.COMPLETE]
    assert trials[3].params == killed.params
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    for trial in complete:  # each trial trained in its own run dir with the values it was given
        hyp = load_checkpoint(Path(trial.user_attrs["run_dir"]) / "weights" / "last.pt")["hyp"]
        assert all(hyp[k] == pytest.approx(v) for k, v in trial.params.items())

    best = max(complete, key=lambda t: t.value)
    assert result.best is not None and result.best.number == best.number
    loaded = load_hyperparameters(evolve_dir / "best_hyp.yaml", DFLLossHyp)  # what --hyp reads
    assert loaded.to_dict() == pytest.approx(best.user_attrs["hyp"])
    assert all(loaded[k] == pytest.approx(v) for k, v in best.params.items())
    with open(evolve_dir / "evolve.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["state"] for r in rows] == ["COMPLETE", "COMPLETE", "FAIL", "COMPLETE"]
    assert [float(r["fitness"]) for r in rows if r["fitness"]] == pytest.approx([t.value for t in complete], rel=1e-5)
    assert (evolve_dir / "evolve.png").stat().st_size > 0

    # the same command once more: the study is finished, nothing is trained
    again = evolve_hyperparameters(options, EvolveOptions(evolve=3), heartbeat_s=1, grace_s=1)
    assert again.finished == 3 and len(load_study(evolve_dir).trials) == 4

    with pytest.raises(EvolveError, match=r"study 'search' was started with --epochs 1, this command has 2"):
        evolve_hyperparameters(tiny_options(small_data, tmp_path, epochs=2), EvolveOptions(evolve=5))


class FakeTrial:
    """An Optuna trial's pruning interface, with the answer fixed."""

    def __init__(self, prune: bool) -> None:
        self.prune, self.reports = prune, []

    def report(self, value: float, step: int) -> None:
        self.reports.append((value, step))

    def should_prune(self) -> bool:
        return self.prune


@pytest.mark.parametrize("prune", [True, False])
def test_pruning_hook_reports_fitness_and_stops_when_told(prune: bool) -> None:
    hook = TrialPruningHook(FakeTrial(prune))
    trainer = SimpleNamespace(best_fitness=0.25, epoch=0, options=SimpleNamespace(epochs=3), stop_requested=False)
    hook.after_epoch(trainer)
    assert hook.trial.reports == [(0.25, 0)]
    assert trainer.stop_requested is prune and hook.pruned is prune
    trainer.stop_requested, trainer.epoch = False, 2
    hook.after_epoch(trainer)  # the last epoch: the trial is complete, never pruned
    assert not trainer.stop_requested and hook.trial.reports[-1] == (0.25, 2)


def test_pruning_hook_runs_after_evaluation_and_before_the_checkpoint() -> None:
    hooks = with_hook_before(default_hooks(), TrialPruningHook(FakeTrial(prune=True)), EarlyStoppingHook)
    kinds = [type(h) for h in hooks]
    # fitness is set before the hook reads it; the stop is set before last.pt records whether training is over
    assert kinds.index(EvaluationHook) < kinds.index(TrialPruningHook) < kinds.index(CheckpointHook)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("lr00: {low: 0.001, high: 0.1}\n", r"bad\.yaml: unknown hyperparameter 'lr00' \(did you mean lr0\?\)"),
        ("lr0: {low: 0.1, hihg: 0.2}\n", r"bad\.yaml: lr0: unknown field 'hihg' \(did you mean high\?\)"),
        ("lr0: {low: 0.0, high: 0.1, log: true}\n", r"bad\.yaml: lr0: a log range needs low > 0"),
        ("box: {low: 2, high: 1}\n", r"bad\.yaml: box: low \(2\) must be below high \(1\)"),
        ("mosaic: {choices: []}\n", r"bad\.yaml: mosaic: choices must be a non-empty list"),
        ("- lr0\n", r"bad\.yaml: expected a mapping"),
    ],
)
def test_bad_space_file_is_one_line_naming_file_and_key(tmp_path: Path, content: str, message: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(content)
    with pytest.raises(SearchSpaceError, match=message):
        load_search_space(bad)


def test_bad_space_file_from_the_command_line(small_data: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("momentun: {low: 0.8, high: 0.95}\n")
    argv = ["--data", str(small_data), "--project", str(tmp_path), "--evolve", "2", "--evolve-space", str(bad)]
    assert train_script.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {bad}: unknown hyperparameter 'momentun' (did you mean momentum, warmup_momentum?)"
    assert not (tmp_path / "exp").exists()  # refused before anything was created


def test_default_space_loads() -> None:
    space = load_search_space()
    assert {"lr0", "momentum", "weight_decay", "box", "dfl", "obj", "mosaic"} <= {r.key for r in space.ranges}
