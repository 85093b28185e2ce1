"""Device selection and seeding."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def select_device(spec: str | int | None = "") -> torch.device:
    """'' -> CUDA:0 if available else CPU; 'cpu'; '0' / 0 / 'cuda:0'; '0,1' -> the first (torchrun sets the rest)."""
    text = str(spec).strip().lower().replace("cuda:", "") if spec is not None else ""
    if text in ("", "none"):
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "mps":
        return torch.device("mps")
    ids = [t for t in text.split(",") if t]
    if not all(t.isdigit() for t in ids):
        raise ValueError(f"--device {spec!r}: expected 'cpu', a CUDA index like 0 or 0,1, or cuda:N")
    if not torch.cuda.is_available():
        raise ValueError(f"--device {spec!r} asks for CUDA, but no CUDA device is available; use --device cpu")
    if max(int(i) for i in ids) >= torch.cuda.device_count():
        raise ValueError(f"--device {spec!r}: only {torch.cuda.device_count()} CUDA device(s) present")
    local = int(os.environ.get("LOCAL_RANK", -1))
    return torch.device(f"cuda:{ids[local] if 0 <= local < len(ids) else ids[0]}")


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
