"""Knowledge distillation (--teacher CHECKPOINT --distill-weight W): the model also learns from a frozen teacher.

In before_backward the teacher runs on the batch the student just saw (same augmented images, no gradients), and
`W * distill` is added to the step's loss, where `distill` (losses/distillation.py) is
- output distillation when both heads are of one family on the same grids: DFL heads (equal reg_max and strides)
  match box distributions and class probabilities; anchor heads (equal strides and anchor count) match objectness,
  classes and box offsets, the student taking the teacher's anchors when a run starts;
- plus feature imitation on every neck map (the head's inputs) whose stride the teacher has too, through a 1x1 conv
  adapter when the channels differ. Heads of different families get feature imitation only (logged once).

The adapters train with the model: their own optimiser, of the trainer's kind, follows the learning rate, momentum
and decay of the model's weights group at every step (so warm-up and schedule apply), and is stepped with the
model's (same gradient scaler, same clipping norm). They are not part of the model (its checkpoints, exports and
EMA stay the student's own) and are saved in the checkpoints' hook state, so --resume restores them with their
optimiser state; --teacher and --distill-weight are run options, restored with the rest.

The item appears as `distill` (weighted, per image, like the detection loss items) in the progress bar, the
epoch line and results.csv (`train/distill_loss`). Without --teacher the hook does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn
from torch.utils.hooks import RemovableHandle

from engine.hooks.base import Hook
from engine.train_setup import TrainingError, read_named_weights
from losses.distillation import anchor_output_distillation, dfl_output_distillation, feature_imitation
from models.checkpoint_model import model_from_checkpoint
from models.detection_model import DetectionModel
from utils import distributed as dist_utils
from utils.logging import LOGGER
from utils.torch_utils import unwrap_model

if TYPE_CHECKING:
    from engine.trainer import Trainer

LOSS_NAME = "distill"
STATE_KEY = "distillation"  # under the checkpoints' hook_state


@dataclass(frozen=True)
class LevelPair:
    """A student neck map and the teacher's at the same stride, with their channel counts."""

    student: int
    teacher: int
    stride: float
    student_channels: int
    teacher_channels: int


@dataclass(frozen=True)
class DistillationPlan:
    """What a student and a teacher can distil: their head outputs ('dfl', 'anchor' or None) and neck levels."""

    outputs: str | None
    levels: tuple[LevelPair, ...]
    why_no_outputs: str = ""


def load_teacher(path: str, device: torch.device) -> DetectionModel:
    """The checkpoint's model (EMA weights when present), read without running anything from the file (weights-only
    loading, or the restricted import of YOLOv5 / ultralytics files), fused, frozen, in eval mode on `device`."""
    teacher = model_from_checkpoint(read_named_weights(path, "--teacher"))
    return teacher.fuse().eval().requires_grad_(False).to(device)


def head_input_channels(model: DetectionModel) -> list[int]:
    """Channels of the maps the head takes, as the builder recorded them (DetectionHead.from_config appends the
    input channels and strides to the head's args)."""
    return [int(c) for c in model.records[-1].args[-2]]


def plan_distillation(student: DetectionModel, teacher: DetectionModel) -> DistillationPlan:
    """Which outputs and neck levels the pair can distil (the student's anchors as they are now)."""
    s_head, t_head = student.head, teacher.head
    s_strides, t_strides = s_head.stride.tolist(), t_head.stride.tolist()
    s_channels, t_channels = head_input_channels(student), head_input_channels(teacher)
    levels = tuple(
        LevelPair(i, t_strides.index(stride), stride, s_channels[i], t_channels[t_strides.index(stride)])
        for i, stride in enumerate(s_strides)
        if stride in t_strides
    )
    outputs, why = None, ""
    if s_head.family != t_head.family:
        why = f"the teacher's head family ({t_head.family}) differs from the student's ({s_head.family})"
    elif s_strides != t_strides:
        why = f"the heads' strides differ (teacher {t_strides}, student {s_strides})"
    elif s_head.family == "dfl" and s_head.reg_max != t_head.reg_max:
        why = f"the DFL heads' reg_max differ (teacher {t_head.reg_max}, student {s_head.reg_max})"
    elif s_head.family == "anchor" and not (
        s_head.anchors.shape == t_head.anchors.shape
        and torch.allclose(s_head.anchors.cpu(), t_head.anchors.cpu(), rtol=1e-4)
    ):
        why = "the anchor heads' anchors differ"
    elif s_head.family in ("dfl", "anchor"):
        outputs = s_head.family
    else:
        why = f"no output distillation for {s_head.family} heads"
    return DistillationPlan(outputs, levels, why)


def adopt_teacher_anchors(student: DetectionModel, teacher: DetectionModel) -> bool:
    """Give an anchor-head student the teacher's anchors when the heads have the same strides and anchor count, so
    their outputs mean the same thing at every (level, anchor, cell); returns whether the anchors changed."""
    s_head, t_head = student.head, teacher.head
    if not (s_head.family == t_head.family == "anchor") or s_head.anchors.shape != t_head.anchors.shape:
        return False
    if s_head.stride.tolist() != t_head.stride.tolist():
        return False
    if torch.equal(s_head.anchors.cpu(), t_head.anchors.cpu()):
        return False
    with torch.no_grad():
        s_head.anchors.copy_(t_head.anchors.to(s_head.anchors))
    return True


def build_adapters(plan: DistillationPlan) -> nn.ModuleList:
    """Per level pair a 1x1 conv from the student's channels to the teacher's, or nothing when they are equal."""
    return nn.ModuleList(
        nn.Conv2d(pair.student_channels, pair.teacher_channels, 1)
        if pair.student_channels != pair.teacher_channels
        else nn.Identity()
        for pair in plan.levels
    )


class DistillationHook(Hook):
    """Runs on every process (each distils its own shard; the adapters' gradients are averaged like the model's).

    Comes before the non-finite-loss guard in the hook list, so a NaN distillation loss skips the batch as any NaN
    loss does, and before the EMA, which copies the student once its anchors are the teacher's.
    """

    def __init__(self, temperature: float = 2.0) -> None:
        self.temperature = temperature
        self.teacher: DetectionModel | None = None
        self.plan: DistillationPlan | None = None
        self.adapters = nn.ModuleList()
        self.optimizer: torch.optim.Optimizer | None = None
        self.student_features: list[torch.Tensor] | None = None
        self.capture: RemovableHandle | None = None

    @property
    def active(self) -> bool:
        return self.teacher is not None

    def before_train(self, trainer: Trainer) -> None:
        o = trainer.options
        if not o.teacher or trainer.training_done:  # no teacher, or only the wrap-up of a finished run is left
            return
        teacher = load_teacher(o.teacher, trainer.device)
        student = unwrap_model(trainer.model)
        if teacher.nc != student.nc:
            student_source = "--single-cls" if o.single_cls else o.data
            raise TrainingError(
                f"--teacher {o.teacher} predicts {teacher.nc} classes, the student {student.nc} ({student_source}); "
                "distillation needs the same classes"
            )
        if trainer.resume_checkpoint is None and adopt_teacher_anchors(student, teacher):
            LOGGER.info(f"Distillation: the student takes the teacher's anchors ({o.teacher}) for output distillation")
        plan = plan_distillation(student, teacher)
        if not plan.outputs and not plan.levels:
            raise TrainingError(
                f"--teacher {o.teacher}: nothing to distil: {plan.why_no_outputs} and no neck map has a stride of "
                f"the student's ({', '.join(f'{s:g}' for s in student.stride.tolist())})"
            )
        self.teacher, self.plan = teacher.to(memory_format=trainer.memory_format), plan
        self.adapters = build_adapters(plan).to(trainer.device, memory_format=trainer.memory_format)
        parameters = list(self.adapters.parameters())
        self.optimizer = adapter_optimizer(trainer.optimizer, parameters) if parameters else None
        self._restore(trainer)
        trainer.loss_names.append(LOSS_NAME)
        LOGGER.info(describe(plan, o.teacher, o.distill_weight, teacher))

    def _restore(self, trainer: Trainer) -> None:
        if trainer.resume_checkpoint is None:
            return
        state = (trainer.resume_checkpoint.get("hook_state") or {}).get(STATE_KEY)
        if state is None:
            raise TrainingError(
                f"--resume {trainer.options.resume}: the checkpoint has no distillation state (adapters) although "
                f"its run distils from {trainer.options.teacher}"
            )
        self.adapters.load_state_dict(state["adapters"])
        if self.optimizer is not None and state.get("optimizer") is not None:
            self.optimizer.load_state_dict(state["optimizer"])

    def before_epoch(self, trainer: Trainer) -> None:
        if not self.active:
            return

        def keep_head_inputs(_module: nn.Module, args: tuple[Any, ...]) -> None:
            self.student_features = list(args[0])

        # registered per epoch, after the EMA copied the model, so the copy never calls it; removed before validation
        self.capture = unwrap_model(trainer.model).head.register_forward_pre_hook(keep_head_inputs)

    def before_backward(self, trainer: Trainer) -> None:
        if not self.active:
            return
        plan, features = self.plan, self.student_features
        self.student_features = None
        with torch.autocast(device_type=trainer.device.type, enabled=trainer.amp):
            with torch.no_grad():
                teacher_features = self.teacher.features(trainer.images)
                teacher_raw = self.teacher.head.predict_raw(teacher_features) if plan.outputs else None
            loss = trainer.loss.new_zeros(())
            if plan.levels:
                adapted = [adapter(features[pair.student]) for adapter, pair in zip(self.adapters, plan.levels)]
                loss = loss + feature_imitation(adapted, [teacher_features[pair.teacher] for pair in plan.levels])
        if plan.outputs == "dfl":
            head = self.teacher.head
            loss = loss + dfl_output_distillation(trainer.preds, teacher_raw, head.reg_max, head.nc, self.temperature)
        elif plan.outputs == "anchor":
            loss = loss + anchor_output_distillation(trainer.preds, teacher_raw)
        item = trainer.options.distill_weight * loss
        # per image in the items, times the batch in the loss: the detection loss's convention (losses/base.py)
        scale = trainer.images.shape[0] * (trainer.world_size if trainer.ddp else 1)
        trainer.loss = trainer.loss + item * scale
        trainer.loss_items = torch.cat([trainer.loss_items, item.detach().reshape(1).to(trainer.loss_items)])

    def before_optimizer_step(self, trainer: Trainer) -> None:
        if self.optimizer is None:
            return
        weights_group = trainer.optimizer.param_groups[1]  # rates set by warm-up and schedule
        for group in self.optimizer.param_groups:
            group.update({k: weights_group[k] for k in self.optimizer.defaults if k in weights_group})
        parameters = list(self.adapters.parameters())
        if trainer.ddp:  # the adapters are outside DDP: average their gradients as DDP does the model's
            for p in parameters:
                if p.grad is not None:
                    torch.distributed.all_reduce(p.grad)
                    p.grad /= dist_utils.world_size()
        trainer.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(parameters, max_norm=trainer.options.max_grad_norm)
        trainer.scaler.step(self.optimizer)  # before the trainer's scaler.update(), which then resets both
        self.optimizer.zero_grad()

    def after_epoch(self, trainer: Trainer) -> None:
        if not self.active:
            return
        if self.capture is not None:
            self.capture.remove()
            self.capture = None
        trainer.hook_state[STATE_KEY] = {
            "adapters": {k: v.detach().clone() for k, v in self.adapters.state_dict().items()},
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else None,
        }


def adapter_optimizer(main: torch.optim.Optimizer, parameters: list[nn.Parameter]) -> torch.optim.Optimizer:
    """An optimiser of the trainer's kind for the adapters, with its weights group's settings.

    Not a parameter group of the trainer's optimiser: --resume restores that one before any hook runs, from a
    state with a fixed number of groups, and warm-up sets the rate of the model's three groups only."""
    weights_group = main.param_groups[1]
    return type(main)(parameters, **{k: weights_group[k] for k in main.defaults if k in weights_group})


def describe(plan: DistillationPlan, path: str, weight: float, teacher: DetectionModel) -> str:
    """The one line that says what is distilled."""
    parts = []
    if plan.outputs:
        parts.append(f"{plan.outputs} head outputs")
    if plan.levels:
        levels = ", ".join(
            f"stride {p.stride:g} ({p.student_channels}->{p.teacher_channels} ch)"
            if p.student_channels != p.teacher_channels
            else f"stride {p.stride:g}"
            for p in plan.levels
        )
        parts.append(f"neck features at {levels}")
    only = f"; feature imitation only: {plan.why_no_outputs}" if not plan.outputs else ""
    size = sum(p.numel() for p in teacher.parameters())
    return f"Distillation from {path} ({teacher.head.family} head, {size:,} parameters, weight {weight:g}): " + (
        " + ".join(parts) + only
    )
