"""Quantizers' log noise kept off the console: onnxruntime's quantizer logs advice and per-tensor notes on the
root logger ("consider pre-processing", "expected bias to be an initializer"), NNCF its INFO lines."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def quiet_quantizers() -> Iterator[None]:
    """Raise the root and `nncf` loggers to ERROR for the block; NNCF's progress bars still show."""
    loggers = [logging.getLogger(), logging.getLogger("nncf")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
