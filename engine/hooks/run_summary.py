"""The last lines of a run: where its results are and the commands that use its weights next."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.hooks.base import Hook
from utils.logging import LOGGER

if TYPE_CHECKING:
    from engine.trainer import Trainer


class RunSummaryHook(Hook):
    main_process_only = True

    def after_train(self, trainer: Trainer) -> None:
        best, data = trainer.weights_dir / "best.pt", trainer.data
        LOGGER.info(
            f"Results saved to {trainer.save_dir}\n"
            f"Weights: {best if best.exists() else trainer.weights_dir / 'last.pt'}\n"
            f"Next:\n"
            f"  python val.py --weights {best} --data {trainer.options.data}\n"
            f"  python detect.py --weights {best} --source {(data.val or data.train)[0]}\n"
            f"  python export.py --weights {best} --include onnx"
        )
