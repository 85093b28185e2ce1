"""Target building for the anchor-based (YOLOv5) head: which (image, anchor, cell) predicts which box.

A box is matched to every anchor of a level whose width and height are both within a factor `anchor_t` of the
box's (the wh-ratio rule). It is then given to its own cell and to the two nearest neighbour cells, one along
x and one along y, towards the side of the cell its centre lies in — three cells instead of one, because the
head's xy parameterisation (sigmoid * 2 - 0.5) reaches half a cell beyond its own. A neighbour is only used
when it lies inside the grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# (dx, dy) subtracted from the box centre, in cells: own cell, then left, up, right, down neighbours.
_NEIGHBOUR_SHIFTS = ((0.0, 0.0), (0.5, 0.0), (0.0, 0.5), (-0.5, 0.0), (0.0, -0.5))
_NEAR = 0.5  # a centre within half a cell of an edge also uses the cell across that edge


@dataclass
class LevelTargets:
    """Matched targets of one pyramid level; every tensor has one row per (box, anchor, cell) match."""

    image: torch.Tensor  # (n,) image index in the batch
    anchor: torch.Tensor  # (n,) anchor index within the level
    grid_y: torch.Tensor  # (n,) cell row
    grid_x: torch.Tensor  # (n,) cell column
    box: torch.Tensor  # (n, 4) x, y relative to the cell's top-left corner, w, h — all in grid units
    anchor_wh: torch.Tensor  # (n, 2) the matched anchor in grid units
    cls: torch.Tensor  # (n,) class index

    def __len__(self) -> int:
        return int(self.image.shape[0])


def build_anchor_targets(
    grid_shapes: list[tuple[int, int]],
    targets: torch.Tensor,
    anchors_grid: torch.Tensor,
    anchor_t: float,
) -> list[LevelTargets]:
    """Match normalised targets to anchors and cells of every level.

    Args:
        grid_shapes: (height, width) of each level's map.
        targets: (M, 6) image index, class, x, y, w, h normalised to the input image.
        anchors_grid: (levels, anchors, 2) anchor sizes in grid units of their level (pixels / stride).
        anchor_t: largest allowed ratio between a box side and the matching anchor side (either way).
    """
    if anchor_t <= 1:
        raise ValueError(f"anchor_t must be > 1, got {anchor_t}")
    device = targets.device
    num_anchors = anchors_grid.shape[1]
    num_targets = targets.shape[0]
    # One copy of every target per anchor, with the anchor index as a 7th column: (na * M, 7).
    anchor_index = torch.arange(num_anchors, device=device, dtype=targets.dtype).repeat_interleave(num_targets)
    expanded = torch.cat((targets.repeat(num_anchors, 1), anchor_index[:, None]), 1)
    shifts = torch.tensor(_NEIGHBOUR_SHIFTS, device=device, dtype=targets.dtype)

    levels = []
    for level, (height, width) in enumerate(grid_shapes):
        anchors = anchors_grid[level].to(device=device, dtype=targets.dtype)
        scale = torch.tensor([width, height, width, height], device=device, dtype=targets.dtype)
        t = expanded.clone()
        t[:, 2:6] = t[:, 2:6] * scale  # to grid units
        ratio = t[:, 4:6] / anchors[t[:, 6].long()]
        t = t[torch.max(ratio, 1 / ratio).amax(1) < anchor_t]

        xy = t[:, 2:4]
        xy_from_far_edge = scale[:2] - xy
        # Near the left/top edge of the cell (and not in the first cell): use the cell to the left/above.
        left, up = ((xy % 1 < _NEAR) & (xy > 1)).T
        # Near the right/bottom edge (and not in the last cell): use the cell to the right/below.
        right, down = ((xy_from_far_edge % 1 < _NEAR) & (xy_from_far_edge > 1)).T
        use = torch.stack((torch.ones_like(left), left, up, right, down))  # (5, n)
        t = t.repeat(5, 1, 1)[use]
        shift = shifts[:, None].expand(-1, use.shape[1], -1)[use]

        cell = (t[:, 2:4] - shift).floor()
        grid_x = cell[:, 0].long().clamp_(0, width - 1)
        grid_y = cell[:, 1].long().clamp_(0, height - 1)
        anchor = t[:, 6].long()
        box = torch.cat((t[:, 2:4] - torch.stack((grid_x, grid_y), 1).to(t.dtype), t[:, 4:6]), 1)
        levels.append(LevelTargets(t[:, 0].long(), anchor, grid_y, grid_x, box, anchors[anchor], t[:, 1].long()))
    return levels
