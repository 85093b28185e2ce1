"""Pruning of --evolve trials: report each epoch's fitness to the trial, stop when the trial says prune."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from engine.hooks.base import Hook
from utils.logging import LOGGER

if TYPE_CHECKING:
    from engine.trainer import Trainer


class PrunableTrial(Protocol):
    """What the hook needs of a trial: Optuna's `Trial` has both methods (a protocol, so hooks need no optuna)."""

    def report(self, value: float, step: int) -> None: ...

    def should_prune(self) -> bool: ...


class TrialPruningHook(Hook):
    """After each epoch's evaluation, reports the best fitness so far (what best.pt is chosen by, and what the trial
    is scored with at the end) at step = epoch, and requests a stop when the trial's pruner says prune; `pruned`
    tells the search afterwards. The best so far rather than the epoch's own: one noisy epoch does not prune a trial.

    Comes after EvaluationHook (which sets the fitness) and before CheckpointHook (which records the stop as the end
    of training). Never prunes at the last epoch: the trial is complete then, and scored as such.
    """

    main_process_only = True  # fitness exists on rank 0; the trainer shares stop_requested with the others

    def __init__(self, trial: PrunableTrial) -> None:
        self.trial = trial
        self.pruned = False

    def after_epoch(self, trainer: Trainer) -> None:
        self.trial.report(float(trainer.best_fitness), step=trainer.epoch)
        if trainer.epoch + 1 < trainer.options.epochs and self.trial.should_prune():
            self.pruned = True
            trainer.stop_requested = True
            LOGGER.info(
                f"Pruning this trial after epoch {trainer.epoch + 1}: best fitness {trainer.best_fitness:.4f} is "
                "below what the other trials had at this epoch"
            )
