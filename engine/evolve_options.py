"""Options of the hyperparameter search (`train.py --evolve N`), kept apart from TrainOptions: they describe the
search, not a training run, so no checkpoint stores them and each trial trains with plain TrainOptions."""

from __future__ import annotations

from dataclasses import dataclass

from utils.options import check_options, option

# A bare --evolve, as YOLOv5's (300 generations there): with short trials that is a long search; give N
BARE_EVOLVE_TRIALS = 300


@dataclass
class EvolveOptions:
    """The search's flags; the trials' own come from TrainOptions (their --epochs, --imgsz, --seed, ...)."""

    evolve: int = option(
        0,
        help="search hyperparameters over N trials of --epochs each (Optuna TPE with pruning; a bare --evolve is "
        f"{BARE_EVOLVE_TRIALS}); N counts finished trials over all machines and reruns; 0: train once",
        nargs="?",
        const=BARE_EVOLVE_TRIALS,
        minimum=0,
    )
    evolve_space: str | None = option(
        None, help="search-space YAML: a name under data/hyps/ or a path (default: data/hyps/evolve_space.yaml)"
    )
    storage: str | None = option(
        None,
        help="Optuna storage URL of the study, e.g. postgresql://user:pw@host/db to run trials of one study on "
        "several machines (default: sqlite:///<project>/<name>/study.db)",
    )
    study_name: str | None = option(None, help="name of the study in --storage (default: --name)")

    def __post_init__(self) -> None:
        check_options(self)
