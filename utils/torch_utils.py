"""Device selection, seeding and model unwrapping shared by training, validation, prediction and export."""

from __future__ import annotations

import os
import random
import re

import numpy as np
import torch
import torch.nn as nn

from utils.distributed import local_rank
from utils.errors import OptionError

_CUDA_SPEC = re.compile(r"^(?:cuda:?)?(\d+(?:,\d+)*)$")


def select_device(spec: str | int | torch.device | None = "") -> torch.device:
    """Turn a user's device spec into a torch.device, failing clearly when it cannot be had.

    Accepted: '' or None (the first CUDA device if there is one, else the CPU), 'cpu', 'mps', an index
    (0 or '0'), 'cuda', 'cuda:0', or a comma list of indices ('0,1': under torchrun each process gets the
    entry of its LOCAL_RANK, otherwise the first). Raises ValueError naming the spec otherwise.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = "" if spec is None else str(spec).strip().lower().replace(" ", "")
    if text == "":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise OptionError("--device mps requested but MPS is not available on this machine")
        return torch.device("mps")
    if text == "cuda":
        text = "0"
    match = _CUDA_SPEC.match(text)
    if match is None:
        raise OptionError(f"invalid --device '{spec}': use cpu, mps, a CUDA index (0), a list (0,1) or cuda:0")
    indices = [int(i) for i in match.group(1).split(",")]
    if not torch.cuda.is_available():
        raise OptionError(
            f"--device {spec} requested but CUDA is not available here (torch {torch.__version__}); use --device cpu"
        )
    count = torch.cuda.device_count()
    missing = [i for i in indices if i >= count]
    if missing:
        raise OptionError(f"--device {spec}: CUDA device(s) {missing} not found; {count} visible")
    local = local_rank()
    return torch.device(f"cuda:{indices[local] if 0 <= local < len(indices) else indices[0]}")


def init_seeds(seed: int = 0, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch; with `deterministic`, prefer deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside DDP / DataParallel wrappers (the model itself when it is not wrapped)."""
    return model.module if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)) else model
