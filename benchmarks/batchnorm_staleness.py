"""Are a run's BatchNorm running statistics what its weights would measure? For saved epochs of a run
(`--save-period 1`), score the EMA weights with their statistics as saved and with some BatchNorm layers'
statistics re-measured (the same weights) on plain training images, chosen as --bn-calibration chooses them, on
the validation split and, optionally, on a second data YAML (e.g. a "fit" split of training images).

Groups: `saved` (nothing re-measured), `all`, `stem` (the BatchNorms the image reaches before its first activation:
what --bn-calibration re-measures by default), `mobileone` (the BatchNorms inside MobileOne blocks), `others` (every
BatchNorm outside them), `layer:N` (outside MobileOne blocks, in model layer N), `one-image:K` (no re-measuring: one
momentum-0.1 training-mode update from the loader's K-th augmented, mosaic-closed image — what the last, incomplete
batch of an epoch does). Used for benchmarks/results/anchor_convergence.md, item 6:

python benchmarks/batchnorm_staleness.py --run runs/train/exp --epochs 10 16 --groups saved all mobileone others layer:0
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import sys
from pathlib import Path

import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dataio.data_config import load_data_config  # noqa: E402
from dataio.dataset import YoloDataset  # noqa: E402
from engine.backends import PyTorchBackend  # noqa: E402
from engine.hooks.batchnorm_stats import (  # noqa: E402
    letterboxed_batches,
    recalibrate_batchnorm,
    stem_batchnorms,
)
from engine.hyperparameters import hyperparameters_for  # noqa: E402
from engine.val_options import ValOptions  # noqa: E402
from engine.val_run import run_val  # noqa: E402
from models.checkpoint_model import model_from_checkpoint  # noqa: E402
from models.detection_model import DetectionModel  # noqa: E402
from models.layers.mobileone import MobileOneBlock  # noqa: E402
from utils.checkpoint import load_checkpoint  # noqa: E402

BatchNorm = nn.modules.batchnorm._BatchNorm


def in_group(name: str, group: str, inside_mobileone: set[str]) -> bool:
    """Whether the BatchNorm `name` is re-measured for `group` (`inside_mobileone`: the names of the BatchNorms
    inside MobileOne blocks)."""
    inside = name in inside_mobileone
    if group == "all":
        return True
    if group == "mobileone":
        return inside
    if group == "others":
        return not inside
    if group.startswith("layer:"):
        return not inside and name.split(".")[1] == group.split(":")[1]
    raise ValueError(f"unknown group {group!r}")


def mobileone_batchnorms(model: DetectionModel) -> set[str]:
    """Names of the BatchNorms inside MobileOne blocks."""
    return {
        f"{prefix}.{name}"
        for prefix, block in model.named_modules()
        if isinstance(block, MobileOneBlock)
        for name, m in block.named_modules()
        if isinstance(m, BatchNorm)
    }


def remeasure(model: DetectionModel, group: str, batches: list[torch.Tensor]) -> None:
    """Re-measure the statistics of `group`'s BatchNorms on `batches`; the others keep theirs."""
    if group == "stem":  # what --bn-calibration does by default
        recalibrate_batchnorm(model, batches, only=stem_batchnorms(model))
        return
    inside_mobileone = mobileone_batchnorms(model)
    kept = {
        name: {k: v.clone() for k, v in m.state_dict().items()}
        for name, m in model.named_modules()
        if isinstance(m, BatchNorm) and not in_group(name, group, inside_mobileone)
    }
    recalibrate_batchnorm(model, batches)  # all of them (each layer sees its inputs as training-mode BN makes them)
    for name, m in model.named_modules():
        if name in kept:
            m.load_state_dict(kept[name])


@torch.no_grad()
def one_image_update(model: DetectionModel, image: torch.Tensor, momentum: float = 0.1) -> None:
    """One training-mode pass of a single image through every BatchNorm (no weight change)."""
    model.eval()
    for m in model.modules():
        if isinstance(m, BatchNorm):
            m.momentum = momentum
            m.train()
    model(image[None])
    model.eval()


def score(model: DetectionModel, data: str, imgsz: int, out: Path) -> float:
    """mAP50-95 of `model` on `data`'s validation split."""
    options = ValOptions(data=data, imgsz=imgsz, plots=False, project=str(out), name="val", exist_ok=True)
    backend = PyTorchBackend(None, model, torch.device("cpu"))
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):  # the table only
        return run_val(options, backend).metrics["map50_95"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, type=Path, help="run directory with weights/epochN.pt")
    parser.add_argument("--epochs", type=int, nargs="+", required=True, help="0-based epochs (epochN.pt is N - 1)")
    parser.add_argument("--groups", nargs="+", default=["saved", "all", "mobileone", "others"])
    parser.add_argument("--data", default="trees.yaml", help="data YAML scored on its val split, and measured on")
    parser.add_argument("--fit-data", default=None, help="a second data YAML to score on (e.g. training tiles)")
    parser.add_argument("--images", type=int, default=64, help="training images the statistics are re-measured on")
    parser.add_argument("--imgsz", type=int, default=416)
    parser.add_argument("--out", type=Path, default=Path("runs/batchnorm_staleness"))
    args = parser.parse_args(argv)

    data = load_data_config(args.data)
    plain = YoloDataset(data.train, imgsz=args.imgsz, augment=False, nc=data.nc)
    batches = [b.float() / 255 for b in letterboxed_batches(plain, args.imgsz, args.images, batch_size=16)]
    print("| epoch | group | held-out mAP50-95 |" + (" fit mAP50-95 |" if args.fit_data else ""))
    print("|---|---|---|" + ("---|" if args.fit_data else ""))
    for epoch in args.epochs:
        ckpt = load_checkpoint(args.run / "weights" / f"epoch{epoch + 1}.pt")
        saved = model_from_checkpoint(ckpt)
        loader_images = None
        for group in args.groups:
            model = copy.deepcopy(saved)
            if group.startswith("one-image:"):
                if loader_images is None:
                    augmentation = hyperparameters_for(saved).augmentation
                    dataset = YoloDataset(data.train, imgsz=args.imgsz, augment=True, hyp=augmentation, nc=data.nc)
                    dataset.close_mosaic()
                    dataset.epoch = epoch
                    loader_images = dataset
                one_image_update(model, loader_images[int(group.split(":")[1])][0].float() / 255)
            elif group != "saved":
                remeasure(model, group, batches)
            row = [f"{score(model, args.data, args.imgsz, args.out):.4f}"]
            if args.fit_data:
                row.append(f"{score(model, args.fit_data, args.imgsz, args.out):.4f}")
            print(f"| {epoch} | {group} | " + " | ".join(row) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
