"""The project logger: plain messages on stdout, so tables and summaries read like the references'; warnings
are marked `WARNING: ` by the logger itself, so no call site writes the prefix."""

from __future__ import annotations

import logging
import sys

LOGGER_NAME = "yolo"


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever sys.stdout is at the time (test capture and redirection keep working)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


class _Formatter(logging.Formatter):
    """The message as it is; a warning gets a `WARNING: ` prefix (errors already say `error: ...`)."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        return f"WARNING: {message}" if record.levelno == logging.WARNING else message


def _make_logger() -> logging.Logger:
    logger = logging.getLogger(LOGGER_NAME)
    if not logger.handlers:
        handler = _StdoutHandler()
        handler.setFormatter(_Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger


LOGGER = _make_logger()


def set_verbosity(verbose: bool) -> None:
    """INFO when verbose, WARNING otherwise (ranks other than 0 in distributed training run quiet)."""
    LOGGER.setLevel(logging.INFO if verbose else logging.WARNING)
