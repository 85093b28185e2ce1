"""Model size reports: the layer table, parameter counts, GFLOPs (thop, 2 x MACs) and the fuse check."""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from models.builder import LayerRecord
from models.detection_model import DetectionModel
from models.reparam import randomize_batchnorm
from utils.compare import relative_max_difference
from utils.logging import LOGGER


def count_parameters(module: nn.Module) -> int:
    """All parameters, frozen ones included (the references count them too)."""
    return sum(p.numel() for p in module.parameters())


def layer_table(layers: nn.ModuleList, records: list[LayerRecord]) -> str:
    """The per-layer table printed by `python models/yolo.py`: index, from, n, params, module, arguments."""
    lines = [f"{'':>5}{'from':>20}{'n':>4}{'params':>11}  {'module':<24}arguments"]
    for module, record in zip(layers, records):
        lines.append(
            f"{record.label:>5}{str(record.written_from):>20}{record.n:>4}{count_parameters(module):>11,}"
            f"  {record.name:<24}{_format_args(record.args)}"
        )
    return "\n".join(lines)


def _format_args(args: list) -> str:
    text = str([round(a, 4) if isinstance(a, float) else a for a in args])
    return text if len(text) <= 90 else text[:87] + "..."


def gflops(
    model: nn.Module, imgsz: int | tuple[int, int] = 640, in_channels: int = 3, in_place: bool = False
) -> float | None:
    """GFLOPs (2 x MACs as thop counts) at `imgsz`; None if thop is missing or cannot trace the model.

    Profiled at the model's largest stride and scaled by area, as the reference implementations do: exact for
    convolutions, and it keeps the profile cheap. thop leaves counters on the modules it has no rule for, so the
    profile runs on a copy; `in_place` profiles the model itself and removes what thop added (half the time: the
    copy costs as much as the profile), for a caller that is about to use the model and holds no copy anyway.
    """
    try:
        import thop
    except ImportError:
        return None
    height, width = (imgsz, imgsz) if isinstance(imgsz, int) else imgsz
    stride = max(int(getattr(model, "stride", torch.tensor([32.0])).max()), 32)
    device = next(model.parameters()).device
    probe = torch.zeros(1, in_channels, stride, stride, device=device)
    target = model if in_place else copy.deepcopy(model)
    hooks_before = {m: set(m._forward_hooks) for m in target.modules()} if in_place else {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            macs = thop.profile(target, inputs=(probe,), verbose=False)[0]
    except Exception:
        return None
    finally:
        if in_place:
            _remove_profiler_state(target, hooks_before)
    return macs * 2 / 1e9 * (height / stride) * (width / stride)


def _remove_profiler_state(model: nn.Module, hooks_before: dict[nn.Module, set[int]]) -> None:
    """Drop thop's counter buffers and any forward hook added since `hooks_before` (a failed profile leaves its
    hooks registered), so the model's state dict and forward are as they were."""
    for module in model.modules():
        for name in ("total_ops", "total_params"):
            module._buffers.pop(name, None)
        for key in set(module._forward_hooks) - hooks_before.get(module, set()):
            del module._forward_hooks[key]


# GFLOPs per (config, input channels, fused, size) for `summary_line(remember=True)`: profiling copies the model
# and runs it with counters (0.2-1 s), and a process that trains one config many times (tests, sweeps) needs it once.
_REMEMBERED_GFLOPS: dict[str, float | None] = {}


def remembered_gflops(model: DetectionModel, imgsz: int = 640) -> float | None:
    """`gflops(model, imgsz)`, computed once per config in this process (the figure depends on nothing else)."""
    key = json.dumps([model.yaml, model.in_channels, model.is_fused, imgsz], sort_keys=True, default=str)
    if key not in _REMEMBERED_GFLOPS:
        _REMEMBERED_GFLOPS[key] = gflops(model, imgsz, model.in_channels, in_place=True)
    return _REMEMBERED_GFLOPS[key]


def summary_line(name: str, model: nn.Module, imgsz: int = 640, remember: bool = False) -> str:
    """`NAME summary: L layers, P parameters, G GFLOPs` (layers = modules, as the references count); `remember`
    reuses the GFLOPs of a DetectionModel of the same config measured earlier in this process."""
    if remember and isinstance(model, DetectionModel):
        flops = remembered_gflops(model, imgsz)
    else:
        flops = gflops(model, imgsz, getattr(model, "in_channels", 3))
    flops_text = f", {flops:.1f} GFLOPs" if flops is not None else ""
    return f"{name} summary: {len(list(model.modules()))} layers, {count_parameters(model):,} parameters{flops_text}"


def describe_model(
    cfg: str, nc: int | None = None, scale: str | None = None, imgsz: int = 640, fuse: bool = False
) -> float | None:
    """Build `cfg`, log its layer table and summary (what `python models/yolo.py` prints); with `fuse`, also
    fuse it and return the relative max difference of the eval outputs, fused against unfused."""
    with torch.random.fork_rng(devices=[]):  # seeded for a reproducible check; the caller's RNG is left alone
        torch.manual_seed(0)
        model = DetectionModel(cfg, nc=nc, scale=scale)
        image = torch.rand(1, model.in_channels, imgsz, imgsz)
    name = Path(cfg).stem
    LOGGER.info(layer_table(model.model, model.records))
    LOGGER.info(summary_line(name, model, imgsz))
    if not fuse:
        return None
    randomize_batchnorm(model).eval()  # fresh BatchNorms are identities; random statistics make the check real
    with torch.no_grad():
        unfused = model(image)
        model.fuse()
        fused = model(image)
    difference = relative_max_difference(unfused, fused)
    LOGGER.info(summary_line(f"{name} (fused)", model, imgsz))
    LOGGER.info(f"max |fused - unfused| = {difference:.3g}")
    return difference
