"""TensorBoard: each epoch's scalars (losses, metrics, learning rates) and the label and batch images, as event
files in the run directory (`tensorboard --logdir runs/train`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2

from engine.hooks.logger import LoggerHook
from utils.logging import LOGGER

if TYPE_CHECKING:
    from engine.trainer import Trainer


class TensorBoardHook(LoggerHook):
    """Logs nothing, with one warning, where tensorboard is not installed (it is in requirements.txt)."""

    def __init__(self) -> None:
        self.writer: Any = None

    def open(self, trainer: Trainer) -> None:
        try:  # optional at run time: torch.utils.tensorboard needs the tensorboard package
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:
            LOGGER.warning(f"TensorBoard: not logging ({e}); pip install tensorboard")
            return
        # purge_step: a resumed run hides what the interrupted one logged for the epochs it redoes
        self.writer = SummaryWriter(str(trainer.save_dir), purge_step=trainer.start_epoch or None)
        LOGGER.info(f"TensorBoard: tensorboard --logdir {trainer.save_dir.parent} (http://localhost:6006/)")

    def log_scalars(self, values: dict[str, float], epoch: int) -> None:
        if self.writer is None:
            return
        for name, value in values.items():
            self.writer.add_scalar(name, value, epoch)
        self.writer.flush()

    def log_image(self, tag: str, path: Path, step: int) -> None:
        image = cv2.imread(str(path))
        if self.writer is not None and image is not None:
            self.writer.add_image(tag, cv2.cvtColor(image, cv2.COLOR_BGR2RGB), step, dataformats="HWC")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
