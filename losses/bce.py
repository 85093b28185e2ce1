"""Binary cross-entropy pieces shared by the losses: label smoothing targets and an optional focal term."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def smooth_bce_targets(epsilon: float) -> tuple[float, float]:
    """Positive and negative BCE targets under label smoothing `epsilon` (arXiv 1902.04103, eq. 3).

    A positive class target becomes 1 - epsilon/2 and a negative one epsilon/2, so epsilon=0 gives (1, 0) and
    epsilon=1 gives (0.5, 0.5): every class equally likely.
    """
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"label_smoothing must lie in [0, 1], got {epsilon}")
    return 1.0 - 0.5 * epsilon, 0.5 * epsilon


class FocalBCEWithLogits(nn.Module):
    """BCE-with-logits, optionally with a focal modulation (gamma > 0) and an alpha balance.

    With gamma == 0 this is exactly `nn.BCEWithLogitsLoss(pos_weight=...)`, so a hyperparameter file with
    fl_gamma: 0 reproduces plain BCE. With gamma > 0 each element is weighted by
    alpha_t * (1 - p_t) ** gamma, where p_t is the probability given to the target (soft targets allowed).
    """

    def __init__(
        self, pos_weight: float = 1.0, gamma: float = 0.0, alpha: float = 0.25, reduction: str = "mean"
    ) -> None:
        super().__init__()
        if gamma < 0:
            raise ValueError(f"fl_gamma must be >= 0, got {gamma}")
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be mean, sum or none, got {reduction!r}")
        self.register_buffer("pos_weight", torch.tensor([float(pos_weight)]), persistent=False)
        self.gamma = gamma
        self.alpha = alpha
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        loss = F.binary_cross_entropy_with_logits(
            logits, targets, pos_weight=self.pos_weight.to(logits.device, logits.dtype), reduction="none"
        )
        if self.gamma > 0:
            prob = logits.sigmoid()
            p_target = targets * prob + (1 - targets) * (1 - prob)
            alpha_t = targets * self.alpha + (1 - targets) * (1 - self.alpha)
            loss = loss * alpha_t * (1.0 - p_target) ** self.gamma
        if self.reduction == "mean":
            return loss.mean()
        if self.reduction == "sum":
            return loss.sum()
        return loss
