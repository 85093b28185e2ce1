"""Validation every epoch on the EMA weights, the best fitness so far, and the final validation of best.pt."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.hooks.base import Hook
from engine.validator import validate
from models.checkpoint_model import model_from_checkpoint
from utils.logging import LOGGER
from utils.torch_utils import unwrap_model

if TYPE_CHECKING:
    from engine.trainer import Trainer


class EvaluationHook(Hook):
    """Sets trainer.metrics, trainer.val_losses, trainer.improved and the best fitness and epoch.

    With --noval only the final epoch is validated. After training, best.pt is validated once more with plots
    (confusion matrix, PR curves, prediction images) and per-class rows.
    """

    main_process_only = True

    def after_epoch(self, trainer: Trainer) -> None:
        o = trainer.options
        if o.noval and trainer.epoch + 1 != o.epochs:
            trainer.metrics, trainer.val_losses = {}, [0.0] * len(trainer.loss_fn.names)
        else:
            model = trainer.ema.ema if trainer.ema is not None else unwrap_model(trainer.model)
            result = validate(
                model,
                trainer.val_loader,
                names=unwrap_model(trainer.model).names,
                device=trainer.device,
                iou_thres=val_iou(trainer),
                loss_fn=trainer.loss_fn,
                half=trainer.amp,
                plots=False,
                save_dir=trainer.save_dir,
                single_cls=o.single_cls,
            )
            trainer.metrics, trainer.val_losses = result.metrics, result.losses
        fitness = trainer.metrics.get("fitness", 0.0)
        trainer.improved = fitness > trainer.best_fitness
        if trainer.improved:
            trainer.best_fitness, trainer.best_epoch = fitness, trainer.epoch

    def after_train(self, trainer: Trainer) -> None:
        best = trainer.weights_dir / "best.pt"
        if not best.exists():
            return
        LOGGER.info(f"\nValidating {best}...")
        model = model_from_checkpoint(best).to(trainer.device)
        result = validate(
            model,
            trainer.val_loader,
            names=model.names,
            device=trainer.device,
            iou_thres=val_iou(trainer),
            plots=not trainer.options.noplots,
            save_dir=trainer.save_dir,
            single_cls=trainer.options.single_cls,
            verbose=True,
        )
        trainer.metrics = result.metrics


def val_iou(trainer: Trainer) -> float:
    """--val-iou-thres, else the head's own default (0.6 anchor, 0.7 DFL, as the references)."""
    if trainer.options.val_iou_thres is not None:
        return trainer.options.val_iou_thres
    return unwrap_model(trainer.model).head.val_iou
