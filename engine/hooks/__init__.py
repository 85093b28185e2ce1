"""Training hooks: every concern of a run beyond the core step, one small class each, in one ordered list.

`default_hooks()` is the list a Trainer uses unless given its own; order matters within an event (evaluation
before the logs and checkpoints that record its metrics, plots before the loggers that read their images).
"""

from __future__ import annotations

from engine.hooks.base import EVENTS, CallbackHook, Hook, HookList, UnknownEventError, check_event
from engine.hooks.batchnorm_stats import BatchNormStatsHook
from engine.hooks.checkpoint import CheckpointHook
from engine.hooks.close_mosaic import CloseMosaicHook
from engine.hooks.csv_log import CSVLogHook
from engine.hooks.distillation import DistillationHook
from engine.hooks.early_stopping import EarlyStoppingHook
from engine.hooks.ema import EMAHook
from engine.hooks.epoch_line import EpochLineHook
from engine.hooks.evaluation import EvaluationHook
from engine.hooks.logger import LoggerHook, epoch_scalars
from engine.hooks.lr_schedule import LRScheduleHook
from engine.hooks.model_summary import ModelSummaryHook
from engine.hooks.nonfinite_loss import NonFiniteLossError, NonFiniteLossHook
from engine.hooks.plots import PlotsHook
from engine.hooks.progress import ProgressBarHook
from engine.hooks.run_summary import RunSummaryHook
from engine.hooks.tensorboard_log import TensorBoardHook


def default_hooks() -> list[Hook]:
    """A fresh list of the standard hooks, in the order they run for each event."""
    return [
        ModelSummaryHook(),  # the layer table and summary line, before anything else is logged
        LRScheduleHook(),  # warm-up per step, schedule per epoch
        DistillationHook(),  # --teacher: adds its loss before the NaN guard checks it; sets anchors before the EMA copy
        NonFiniteLossHook(),  # skips batches whose loss is NaN or infinite; stops after --max-nan-steps in a row
        CloseMosaicHook(),
        EMAHook(),
        ProgressBarHook(),
        BatchNormStatsHook(),  # re-measures the EMA's BatchNorm statistics before it is validated and saved
        EvaluationHook(),  # after_epoch: metrics and best fitness; after_train: validates best.pt
        PlotsHook(),  # before the loggers, which log the images it writes
        CSVLogHook(),
        TensorBoardHook(),
        EpochLineHook(),  # the epoch's losses and metrics as one stdout line (the bar's numbers go to stderr)
        EarlyStoppingHook(),  # before the checkpoint, which records whether training is over
        CheckpointHook(),  # after evaluation: saves its metrics; after_train: strips best.pt and last.pt
        RunSummaryHook(),
    ]


__all__ = [
    "BatchNormStatsHook",
    "EVENTS",
    "CSVLogHook",
    "CallbackHook",
    "CheckpointHook",
    "CloseMosaicHook",
    "DistillationHook",
    "EMAHook",
    "EarlyStoppingHook",
    "EpochLineHook",
    "EvaluationHook",
    "Hook",
    "HookList",
    "LRScheduleHook",
    "LoggerHook",
    "ModelSummaryHook",
    "NonFiniteLossError",
    "NonFiniteLossHook",
    "PlotsHook",
    "ProgressBarHook",
    "RunSummaryHook",
    "TensorBoardHook",
    "UnknownEventError",
    "check_event",
    "default_hooks",
    "epoch_scalars",
]
