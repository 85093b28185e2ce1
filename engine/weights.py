"""Which weights to use when the user names none: the newest trained best.pt, said out loud."""

from __future__ import annotations

from pathlib import Path

from utils.errors import UserError
from utils.files import newest_weights
from utils.logging import LOGGER

TRAIN_HINT = "python train.py --cfg yolov5s_mobileone.yaml"


class NoWeightsError(UserError, FileNotFoundError):
    """No --weights given and no trained model to fall back on."""


def resolve_weights(weights: str | Path | None, runs_dir: str | Path = "runs") -> Path:
    """`weights` if given; otherwise the newest `<runs_dir>/train/*/weights/best.pt`, logged as the choice."""
    if weights:
        return Path(weights)
    found = newest_weights(runs_dir)
    if found is None:
        raise NoWeightsError(
            f"no --weights given and no trained model found under "
            f"{Path(runs_dir) / 'train' / '*' / 'weights' / 'best.pt'}. "
            f"Train one first, e.g. `{TRAIN_HINT}`, or pass --weights path/to/best.pt"
        )
    LOGGER.info(f"No --weights given: using the newest trained model {found}")
    return found
