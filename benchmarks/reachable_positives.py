"""Does the anchor head's task-aligned loss train boxes its decoding cannot output? (anchor_convergence.md, item 9)

YOLOv5's head decodes a candidate's centre as its cell's centre + (2 * sigmoid - 1) * stride and its size as
(2 * sigmoid)^2 * anchor, so it can only output boxes whose centre lies within one stride of the cell's centre and
whose sides are under 4x the anchor's. The task-aligned assigner picks any candidate inside the box.

    python benchmarks/reachable_positives.py share --weights RUN/weights/last.pt [--data trees.yaml --batches 4]
        share of the positives (and of their target weight) beyond that reach, on augmented training batches
    python benchmarks/reachable_positives.py train --cfg yolov5n.yaml ...
        train.py with `--loss ReachableAlignedAnchorLoss` added: the default loss, candidates limited to the reach

The loss is registered in this process only, by `train`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import yaml  # noqa: E402

from dataio.augmentation_hyp import AugmentationHyp  # noqa: E402
from dataio.data_config import load_data_config  # noqa: E402
from dataio.dataset import YoloDataset  # noqa: E402
from dataio.loader import build_dataloader  # noqa: E402
from engine.hyperparameters import resolve_hyp_path  # noqa: E402
from losses.aligned_anchor_loss import AlignedAnchorLoss, anchor_candidates  # noqa: E402
from losses.base import check_targets, register_loss  # noqa: E402
from losses.dfl_loss import targets_per_image  # noqa: E402
from models.checkpoint_model import model_from_checkpoint  # noqa: E402
from models.heads.anchor_detect import AnchorDetect  # noqa: E402


class ReachableAlignedAnchorLoss(AlignedAnchorLoss):
    """AlignedAnchorLoss with each box's candidates limited to those whose decoding can express it (registered by
    the `train` command only, so importing this module leaves the loss registry as it was)."""

    def __init__(self, head: AnchorDetect, hyp: Mapping[str, Any], imgsz: int | None = None) -> None:
        super().__init__(head, hyp, imgsz, reachable_only=True)


@torch.no_grad()
def beyond_reach_share(
    weights: str, data: str, batches: int, imgsz: int, batch_size: int, reachable_only: bool = False
) -> dict[str, float]:
    """Positives of the default assignment (or, with `reachable_only`, of ReachableAlignedAnchorLoss's) whose box
    lies beyond their candidate's reach, on `batches` augmented training batches (seed 0): count and share of the
    positives and of their summed target weight."""
    model = model_from_checkpoint(weights).train()  # raw maps, as the loss sees them
    head = model.model[-1]
    hyp = yaml.safe_load(resolve_hyp_path(AlignedAnchorLoss.hyp_file).read_text())
    loss = AlignedAnchorLoss(head, hyp)
    config = load_data_config(data)
    dataset = YoloDataset(
        config.train, imgsz=imgsz, augment=True, hyp=AugmentationHyp.read(hyp), stride=int(head.stride.max()),
        batch_size=batch_size, nc=config.nc, seed=0,
    )  # fmt: skip
    loader = build_dataloader(dataset, batch_size, workers=0, seed=0)
    positives = beyond = 0
    weight = weight_beyond = 0.0
    for index, (images, targets, *_) in enumerate(loader):
        if index == batches:
            break
        raw = model(images.float() / 255)
        logits, boxes, centres, reach = anchor_candidates(raw, head.anchors, head.stride)
        targets = check_targets(targets, len(images), head.nc)
        image_wh = torch.tensor(images.shape[2:], dtype=torch.float32).flip(0)
        gt_labels, gt_boxes, gt_mask = targets_per_image(targets, len(images), image_wh)
        scores = logits[..., 4:5].sigmoid() * (logits[..., 5:].sigmoid() if head.nc > 1 else 1.0)
        limit = reach if reachable_only else None
        assigned = loss.assigner(scores, boxes, centres, gt_labels, gt_boxes, gt_mask, limit)
        b, n = assigned.foreground.nonzero(as_tuple=True)
        out = ~loss.assigner.within_reach(assigned.boxes[b, n], centres[n], reach[n])
        target = assigned.scores.sum(-1)[b, n]
        positives, beyond = positives + len(n), beyond + int(out.sum())
        weight, weight_beyond = weight + float(target.sum()), weight_beyond + float(target[out].sum())
    return {
        "positives": positives,
        "beyond_reach": beyond,
        "share": beyond / max(positives, 1),
        "weight_share": weight_beyond / max(weight, 1e-12),
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["train"]:
        from train import main as train

        register_loss(ReachableAlignedAnchorLoss)  # a second call with the same class is allowed
        return train([*argv[1:], "--loss", ReachableAlignedAnchorLoss.__name__])
    if argv[:1] != ["share"]:
        print(__doc__)
        return 2
    parser = argparse.ArgumentParser(description="share of the anchor loss's positives beyond their reach")
    parser.add_argument("--weights", required=True)
    parser.add_argument("--data", default="trees.yaml")
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--imgsz", type=int, default=416)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--reachable-only", action="store_true", help="assign as ReachableAlignedAnchorLoss does")
    args = parser.parse_args(argv[1:])
    result = beyond_reach_share(args.weights, args.data, args.batches, args.imgsz, args.batch, args.reachable_only)
    print(
        f"{args.weights}: {result['beyond_reach']} of {result['positives']} positives beyond reach "
        f"({result['share']:.1%}; {result['weight_share']:.1%} of the target weight)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
