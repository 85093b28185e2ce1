"""Keeping native code's printing off the terminal when the call it belongs to fails."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def native_output_kept_on_success() -> Iterator[None]:
    """Capture everything written to the process's stdout and stderr (file descriptors 1 and 2, so C++ output
    too); replay it to sys.stdout / sys.stderr if the block succeeds, drop it if the block raises.

    Why: torch's TorchScript-based ONNX exporter turns its own log on for every export (torch 2.14's
    `setup_onnx_logging` tests the function `_jit_is_onnx_log_enabled` instead of calling it) and, when an
    export fails, prints the whole TorchScript IR graph, hundreds of lines, from C++ before raising. The
    exception says what failed.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    succeeded = False
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        captures = {1: (out, sys.stdout), 2: (err, sys.stderr)}
        try:
            for fd, (capture, _) in captures.items():
                os.dup2(capture.fileno(), fd)
            yield
            succeeded = True
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, original in saved.items():
                os.dup2(original, fd)
                os.close(original)
            if succeeded:
                for capture, stream in captures.values():
                    capture.seek(0)
                    text = capture.read().decode(errors="replace")
                    if text:
                        stream.write(text)
