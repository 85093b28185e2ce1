"""Knowledge-distillation losses: a student's raw head maps and neck features against a frozen teacher's.

Three terms, each a per-image mean the trainer scales like the detection loss (engine/hooks/distillation.py):
- DFL heads (YOLOv8/11): KL divergence between the teacher's and the student's box-side distributions, with a
  temperature, and a binary KL between their class probabilities;
- anchor heads (YOLOv5, same anchors, strides and grids): binary KL on objectness and classes, squared error on
  the box offsets;
- feature imitation: squared error between the student's neck map (through a 1x1 adapter when the channels
  differ) and the teacher's at the same stride, scaled by the teacher map's variance so every level counts alike.

Dense heads see mostly background: a plain mean over all points would teach the student little but "nothing here".
So the output terms are weighted means, each point (and class) weighted by the larger of the teacher's and the
student's confidence there: objects the teacher sees count fully, and so do the student's false positives; easy
background, where both are near zero, hardly counts. Weights are detached: they choose where to learn, not what.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def binary_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """Elementwise KL(Bernoulli(sigmoid(teacher)) || Bernoulli(sigmoid(student))): zero where they agree.

    BCE against the teacher's probability minus the teacher's own entropy (the part the student cannot change)."""
    target = teacher_logits.sigmoid()
    return F.binary_cross_entropy_with_logits(
        student_logits, target, reduction="none"
    ) - F.binary_cross_entropy_with_logits(teacher_logits, target, reduction="none")


def weighted_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """sum(w * v) / sum(w), with the sum of weights kept away from zero."""
    return (values * weights).sum() / weights.sum().clamp(min=1e-6)


def confidence_weights(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """max(teacher probability, student probability), detached: see the module docstring."""
    return torch.maximum(teacher_logits.sigmoid(), student_logits.sigmoid()).detach()


def flatten_dfl_maps(raw: list[torch.Tensor]) -> torch.Tensor:
    """Per-level (batch, channels, h, w) maps -> (batch, channels, points), levels concatenated."""
    return torch.cat([p.flatten(2) for p in raw], 2)


def dfl_output_distillation(
    student_raw: list[torch.Tensor],
    teacher_raw: list[torch.Tensor],
    reg_max: int,
    nc: int,
    temperature: float = 2.0,
) -> torch.Tensor:
    """Distillation between two DFL heads of equal reg_max, nc and strides (same grids): box-distribution KL
    (times temperature squared, so its gradients keep their scale) weighted by the teacher's confidence per
    point, plus the class binary KL weighted per point and class."""
    student, teacher = flatten_dfl_maps(student_raw).float(), flatten_dfl_maps(teacher_raw).float()
    if student.shape != teacher.shape:
        raise ValueError(f"DFL distillation: student maps {tuple(student.shape)} != teacher's {tuple(teacher.shape)}")
    b, _, n = student.shape
    s_box, s_cls = student.split((4 * reg_max, nc), 1)
    t_box, t_cls = teacher.split((4 * reg_max, nc), 1)
    t_log_prob = F.log_softmax(t_box.view(b, 4, reg_max, n) / temperature, 2)
    s_log_prob = F.log_softmax(s_box.view(b, 4, reg_max, n) / temperature, 2)
    box_kl = (t_log_prob.exp() * (t_log_prob - s_log_prob)).sum(2).mean(1) * temperature**2  # (b, n)
    teacher_confidence = t_cls.sigmoid().amax(1)  # (b, n)
    box = weighted_mean(box_kl, teacher_confidence)
    cls = weighted_mean(binary_kl(s_cls, t_cls), confidence_weights(s_cls, t_cls))
    return box + cls


def anchor_output_distillation(student_raw: list[torch.Tensor], teacher_raw: list[torch.Tensor]) -> torch.Tensor:
    """Distillation between two anchor heads with the same anchors, strides and class count: objectness binary KL
    weighted per anchor, class binary KL and box squared error (on the sigmoid offsets the decode uses) weighted by
    the teacher's objectness."""
    if [p.shape for p in student_raw] != [p.shape for p in teacher_raw]:
        raise ValueError(
            f"anchor distillation: student maps {[tuple(p.shape) for p in student_raw]} != "
            f"teacher's {[tuple(p.shape) for p in teacher_raw]}"
        )
    no = student_raw[0].shape[-1]
    student = torch.cat([p.reshape(p.shape[0], -1, no) for p in student_raw], 1).float()  # (b, points, 5 + nc)
    teacher = torch.cat([p.reshape(p.shape[0], -1, no) for p in teacher_raw], 1).float()
    s_obj, t_obj = student[..., 4], teacher[..., 4]
    obj = weighted_mean(binary_kl(s_obj, t_obj), confidence_weights(s_obj, t_obj))
    teacher_objectness = t_obj.sigmoid()
    box_error = (student[..., :4].sigmoid() - teacher[..., :4].sigmoid()).pow(2).sum(-1)
    box = weighted_mean(box_error, teacher_objectness)
    loss = obj + box
    if no > 5:  # with one class YOLOv5 heads still predict a class logit; it is distilled like the others
        cls_kl = binary_kl(student[..., 5:], teacher[..., 5:]).mean(-1)
        loss = loss + weighted_mean(cls_kl, teacher_objectness)
    return loss


def feature_imitation(student_features: list[torch.Tensor], teacher_features: list[torch.Tensor]) -> torch.Tensor:
    """Mean over levels of the squared error between adapted student maps and the teacher's maps, each divided by
    the teacher map's variance (neck maps of different models differ in scale by orders of magnitude)."""
    if not student_features or len(student_features) != len(teacher_features):
        raise ValueError(f"feature imitation: {len(student_features)} student maps, {len(teacher_features)} teacher's")
    losses = []
    for s, t in zip(student_features, teacher_features):
        if s.shape != t.shape:
            raise ValueError(f"feature imitation: adapted student map {tuple(s.shape)} != teacher's {tuple(t.shape)}")
        s, t = s.float(), t.float()
        losses.append((s - t).pow(2).mean() / t.var().clamp(min=1e-6))
    return torch.stack(losses).mean()
