"""Hyperparameter search: `python train.py ... --evolve N` trains N short trials (each the run's --epochs) with
hyperparameters drawn by Optuna's TPE sampler from the search space (engine/evolve_space.py), prunes trials whose
fitness falls behind the others' at the same epoch (a hook, engine/hooks/trial_pruning.py), and keeps the best.

The study lives in a database: `sqlite:///<evolve dir>/study.db` by default, any Optuna storage URL with
--storage (e.g. postgresql://...), so several machines run trials of one study at once and a rerun of the same
command after a kill resumes it. Trials write heartbeats: one left RUNNING by a killed process goes stale after
GRACE_S seconds, is marked failed and re-run with the same values by whichever worker sees it first. N counts the
finished (complete or pruned) trials of the study, over every machine and rerun.
"""

from __future__ import annotations

import dataclasses
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.exc
import yaml
from optuna.samplers import BaseSampler, TPESampler
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback, fail_stale_trials
from optuna.trial import FrozenTrial, TrialState

from dataio.data_config import load_data_config
from engine.evolve_options import EvolveOptions
from engine.evolve_report import TrialRecord, best_trial, plot_evolve, write_best_hyp, write_evolve_csv
from engine.evolve_space import SearchSpace, load_search_space
from engine.hooks import EarlyStoppingHook, Hook, NonFiniteLossError, default_hooks
from engine.hooks.trial_pruning import TrialPruningHook
from engine.hyperparameters import Hyperparameters, hyperparameters_for
from engine.train_options import DEFAULT_CFG, TrainOptions
from engine.train_setup import read_named_weights
from engine.trainer import Trainer
from models.detection_model import DetectionModel
from utils.atomic_write import atomic_write, ensure_directory
from utils.errors import UserError
from utils.files import claim_run_dir
from utils.logging import LOGGER

HEARTBEAT_S = 30  # a running trial writes a heartbeat this often
GRACE_S = 120  # a RUNNING trial without a heartbeat for this long was killed: it is failed and re-run
MAX_RETRIES = 2  # re-runs of a killed trial's values before they are given up
DEFAULT_PROJECT = "runs/evolve"  # where --evolve runs go while --project is left at training's default
# Options that change where or how fast a trial runs, not its result: workers of one study may differ in these.
LOCAL_OPTIONS = ("device", "workers", "project", "name", "exist_ok", "resume", "cache", "nosave")
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


class EvolveError(UserError, ValueError):
    """A search that cannot start: options it cannot use, a storage it cannot open, a study of other options."""


@dataclass(frozen=True)
class EvolveResult:
    """Where a search left its files, and its best trial (None when no trial completed)."""

    evolve_dir: Path
    study_name: str
    finished: int
    best: TrialRecord | None


class TrialSeededTPESampler(BaseSampler):
    """TPE whose random draws for trial k come from `seed + k`: reproducible for one worker, and two workers that
    start together (the same seed on two machines) draw different values instead of training the same ones twice.
    Constant liar: trials running elsewhere count as bad while they run, so parallel workers spread out."""

    def __init__(self, seed: int, n_startup_trials: int) -> None:
        self.seed, self.n_startup_trials = seed, n_startup_trials
        self.tpe = self._tpe(seed)

    def _tpe(self, seed: int) -> TPESampler:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # constant_liar
            return TPESampler(seed=seed, n_startup_trials=self.n_startup_trials, constant_liar=True)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.tpe = self._tpe(self.seed + trial.number)
        self.tpe.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, Any]:
        return self.tpe.infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, Any]) -> dict[str, Any]:
        return self.tpe.sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: Any
    ) -> Any:
        return self.tpe.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None
    ) -> None:
        self.tpe.after_trial(study, trial, state, values)


def evolve_hyperparameters(
    options: TrainOptions, search: EvolveOptions, heartbeat_s: int = HEARTBEAT_S, grace_s: int = GRACE_S
) -> EvolveResult:
    """Run the search until the study holds `search.evolve` finished trials; returns where its files are."""
    check_evolve_options(options, search)
    space = load_search_space(search.evolve_space)
    start = starting_hyperparameters(options)
    searched = [r.key for r in space.applicable(start)]  # a bad relative range fails here, before any file
    if "mosaic" in searched and options.close_mosaic >= options.epochs:
        LOGGER.warning(
            f"Evolve: --close-mosaic {options.close_mosaic} >= --epochs {options.epochs}: no trial uses mosaic, so "
            "searching its probability changes nothing; lower --close-mosaic or drop mosaic from the space"
        )
    evolve_dir = claim_run_dir(evolve_dir_of(options), exist_ok=True).path  # the same command: the same directory
    study_name = search.study_name or options.name
    url = search.storage or f"sqlite:///{(evolve_dir / 'study.db').resolve()}"
    study = open_study(url, study_name, options, space, start, search.evolve, heartbeat_s, grace_s)
    trials_dir = ensure_directory(evolve_dir / "trials")
    LOGGER.info(f"Evolve: study {study_name!r} in {shown_url(url)}, {search.evolve} trials of {options.epochs} epochs")

    def objective(trial: optuna.Trial) -> float:
        return run_trial(trial, options, space, start, trials_dir, search.evolve)

    waiting_logged = False
    while True:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            fail_stale_trials(study)  # killed trials: failed, and their values queued again (the retry callback)
        finished = len(study.get_trials(deepcopy=False, states=FINISHED))
        running = len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))
        if finished >= search.evolve:
            break
        if finished + running >= search.evolve:  # the rest are running elsewhere: wait for them, or their heartbeat
            if not waiting_logged:
                LOGGER.info(
                    f"Evolve: waiting for {running} running trial(s): another worker's, or a killed one that is "
                    f"failed and re-run here once its heartbeat is {grace_s} s old"
                )
                waiting_logged = True
            time.sleep(heartbeat_s)
            continue
        study.optimize(objective, n_trials=1, gc_after_trial=True)
        write_reports(study, evolve_dir, space, study_name)
    best = write_reports(study, evolve_dir, space, study_name)
    if best is not None:
        LOGGER.info(
            f"Evolve: best of {finished} trials is trial {best.number}, fitness {best.fitness:.4f}; its "
            f"hyperparameters: {evolve_dir / 'best_hyp.yaml'} (python train.py --hyp {evolve_dir / 'best_hyp.yaml'})"
        )
    return EvolveResult(evolve_dir, study_name, finished, best)


def check_evolve_options(options: TrainOptions, search: EvolveOptions) -> None:
    """Options a search cannot use, refused in one line before anything is read or created."""
    if search.evolve < 1:
        raise EvolveError(f"--evolve {search.evolve}: give the number of trials (>= 1)")
    if options.resume:
        raise EvolveError("--evolve with --resume: rerun the same --evolve command instead; it resumes the study")
    if options.noval:
        raise EvolveError("--evolve with --noval: trials are scored and pruned by each epoch's validation")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise EvolveError("--evolve under torchrun: start one search process per GPU or machine on one --storage")


def evolve_dir_of(options: TrainOptions) -> Path:
    """<project>/<name>, with runs/evolve for project while --project is training's default (runs/train)."""
    default_project = next(f.default for f in dataclasses.fields(TrainOptions) if f.name == "project")
    project = DEFAULT_PROJECT if options.project == default_project else options.project
    return Path(project) / options.name


def starting_hyperparameters(options: TrainOptions) -> Hyperparameters:
    """The hyperparameters a plain run of these options would train with (--hyp, or its loss's own file): the
    values the space's relative ranges multiply, that unsearched keys keep, and the study's first trial."""
    data = load_data_config(options.data)
    weights = read_named_weights(options.weights, "--weights") if options.weights and not options.cfg else None
    cfg = options.cfg or (weights["model_yaml"] if weights else DEFAULT_CFG)  # as Trainer.build_model chooses
    model = DetectionModel(cfg, nc=1 if options.single_cls else data.nc, scale=options.scale)
    hyp = hyperparameters_for(model, options.hyp, options.loss)
    return hyp.replace(label_smoothing=options.label_smoothing) if options.label_smoothing else hyp


def open_study(
    url: str,
    name: str,
    options: TrainOptions,
    space: SearchSpace,
    start: Hyperparameters,
    trials: int,
    heartbeat_s: int,
    grace_s: int,
) -> optuna.Study:
    """The study `name` in `url`, created with the starting values as its first trial, or loaded and checked to
    be a study of the same options, space and starting values (else its results would not compare)."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # each trial is logged here, in the project's words
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat_interval
        try:
            storage = RDBStorage(
                url,
                heartbeat_interval=heartbeat_s,
                grace_period=grace_s,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES),
            )
        except (ImportError, ValueError, sqlalchemy.exc.SQLAlchemyError) as e:
            raise EvolveError(f"--storage {shown_url(url)}: cannot open it: {one_line(e)}") from None
    startup = max(2, min(10, trials // 3))  # random trials before TPE models the results
    sampler = TrialSeededTPESampler(options.seed, startup)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=options.epochs // 2)
    signature = study_signature(options, space, start)
    try:
        study = optuna.create_study(
            storage=storage, study_name=name, sampler=sampler, pruner=pruner, direction="maximize"
        )
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(storage=storage, study_name=name, sampler=sampler, pruner=pruner)
        check_signature(study, signature, name)
        return study
    for key, value in signature.items():
        study.set_user_attr(key, value)
    study.enqueue_trial(space.starting_point(start))  # trial 0: the starting values (where the space holds them)
    return study


def study_signature(options: TrainOptions, space: SearchSpace, start: Hyperparameters) -> dict[str, Any]:
    """What trials of one study must share: the training options (but where and how fast they run), the space and
    the starting hyperparameters."""
    train = {k: v for k, v in options.to_dict().items() if k not in LOCAL_OPTIONS}
    return {"train_options": train, "search_space": space.describe(), "starting_hyp": start.to_dict()}


def check_signature(study: optuna.Study, signature: dict[str, Any], name: str) -> None:
    """Refuse to add trials to a study started with other options, in one line naming the first difference."""
    stored = study.user_attrs
    for section, values in signature.items():
        if section not in stored:  # another worker created the study and has not stored it yet
            continue
        before = stored[section]
        for key in sorted(set(before) | set(values)):
            if before.get(key) != values.get(key):
                what = "--" + key.replace("_", "-") if section == "train_options" else f"{section} {key}"
                raise EvolveError(
                    f"study {name!r} was started with {what} {before.get(key)!r}, this command has "
                    f"{values.get(key)!r}: use the same options, or another --study-name (or --name)"
                )


def run_trial(
    trial: optuna.Trial,
    options: TrainOptions,
    space: SearchSpace,
    start: Hyperparameters,
    trials_dir: Path,
    trials: int,
) -> float:
    """One trial: draw the values, train with them in trials/trialNNN, return the best epoch's fitness (what best.pt
    is chosen by); raise TrialPruned when the pruning hook stopped it or the loss diverged."""
    values = space.suggest(trial, start)
    hyp = start.replace(**values)
    run_dir = ensure_directory(trials_dir / f"trial{trial.number:03d}")
    hyp_file = atomic_write(run_dir / "trial_hyp.yaml", yaml.safe_dump(hyp.to_dict(), sort_keys=False))
    trial.set_user_attr("hyp", hyp.to_dict())
    trial.set_user_attr("run_dir", str(run_dir))
    shown = ", ".join(f"{k}={v:.4g}" for k, v in values.items())
    LOGGER.info(f"\nEvolve trial {trial.number} (study has {trials} to finish): {shown}")
    # nosave: a trial's checkpoints are written once, at its end (a killed trial is re-run from its start anyway)
    trial_options = dataclasses.replace(
        options,
        project=str(trials_dir),
        name=run_dir.name,
        exist_ok=True,
        hyp=str(hyp_file),
        resume=False,
        nosave=True,
        save_period=-1,
    )
    pruning = TrialPruningHook(trial)
    trainer = Trainer(trial_options, hooks=with_hook_before(default_hooks(), pruning, EarlyStoppingHook))
    try:
        trainer.train()
    except NonFiniteLossError as e:  # these values diverge: a bad trial, not a failed search
        trial.set_user_attr("diverged", str(e))
        raise optuna.TrialPruned(f"diverged: {e}") from None
    if pruning.pruned:
        raise optuna.TrialPruned(f"pruned after epoch {trainer.epoch + 1}")
    LOGGER.info(f"Evolve trial {trial.number}: fitness {trainer.best_fitness:.4f} (epoch {trainer.best_epoch + 1})")
    return float(trainer.best_fitness)


def with_hook_before(hooks: list[Hook], hook: Hook, before: type[Hook]) -> list[Hook]:
    """`hooks` with `hook` inserted before the first of type `before` (at the end if there is none)."""
    index = next((i for i, h in enumerate(hooks) if isinstance(h, before)), len(hooks))
    return [*hooks[:index], hook, *hooks[index:]]


def trial_record(trial: FrozenTrial) -> TrialRecord:
    """A FrozenTrial as the reports take it; a pruned trial's fitness is its last reported one."""
    fitness = trial.value
    if fitness is None and trial.state == TrialState.PRUNED and trial.intermediate_values:
        fitness = trial.intermediate_values[max(trial.intermediate_values)]
    duration = trial.duration.total_seconds() if trial.duration is not None else None
    return TrialRecord(
        number=trial.number,
        state=trial.state.name,
        fitness=fitness,
        params=dict(trial.params),
        epochs=len(trial.intermediate_values),
        duration_s=duration,
        hyp=trial.user_attrs.get("hyp"),
        run_dir=trial.user_attrs.get("run_dir", ""),
    )


def write_reports(study: optuna.Study, evolve_dir: Path, space: SearchSpace, name: str) -> TrialRecord | None:
    """evolve.csv, evolve.png and best_hyp.yaml from every trial of the study (every machine's); the best trial."""
    records = [trial_record(t) for t in study.get_trials(deepcopy=False)]
    keys = [r.key for r in space.ranges if any(r.key in t.params for t in records)]
    write_evolve_csv(records, keys, evolve_dir / "evolve.csv")
    finished = sum(r.state in ("COMPLETE", "PRUNED") for r in records)
    plot_evolve(records, evolve_dir / "evolve.png", title=f"study {name}: {finished} finished trials")
    best = best_trial(records)
    if best is not None:
        write_best_hyp(best, evolve_dir / "best_hyp.yaml", f"study {name!r} ({finished} finished trials)")
    return best


def shown_url(url: str) -> str:
    """The storage URL with any password hidden (it goes to logs and error lines)."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        return url.split("@")[-1] if "@" in url else url


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split())[:300]
