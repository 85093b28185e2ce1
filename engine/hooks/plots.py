"""labels.jpg before training, train_batch0..2.jpg from the first batches, results.png at the end (not with
--noplots)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from engine.hooks.base import Hook
from engine.hooks.logger import TRAIN_BATCH_IMAGES
from utils.plots import plot_batch, plot_labels, plot_results
from utils.torch_utils import unwrap_model

if TYPE_CHECKING:
    from engine.trainer import Trainer


class PlotsHook(Hook):
    main_process_only = True

    def before_train(self, trainer: Trainer) -> None:
        if trainer.options.noplots or trainer.start_epoch != 0:
            return
        labelled = [image_labels for image_labels in trainer.train_set.labels if len(image_labels)]
        if labelled:
            names = unwrap_model(trainer.model).names
            plot_labels(np.concatenate(labelled), names, trainer.save_dir / "labels.jpg")

    def after_step(self, trainer: Trainer) -> None:
        if trainer.options.noplots or trainer.epoch != 0 or trainer.batch_index >= TRAIN_BATCH_IMAGES:
            return
        plot_batch(
            (trainer.images * 255).byte().cpu(),
            trainer.targets.cpu(),
            trainer.paths,
            unwrap_model(trainer.model).names,
            trainer.save_dir / f"train_batch{trainer.batch_index}.jpg",
        )

    def after_train(self, trainer: Trainer) -> None:
        results = trainer.save_dir / "results.csv"
        if not trainer.options.noplots and results.is_file():
            plot_results(results)
