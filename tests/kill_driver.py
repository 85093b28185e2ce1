"""Worker of tests/test_fault_kill.py: runs train.py's main in this process and kills it with SIGKILL at a named
point, so a test can stop training deterministically anywhere without test code in the training path.

    python -m tests.kill_driver KILL_POINT [train.py arguments ...]

Kill points are labelled `e<epoch>:<event>:<what>`, for example
    e1:after_epoch:before:CheckpointHook     before that hook's handler of the event runs
    e1:after_epoch:last.pt:start             inside atomic_write: temp file created, nothing written yet
    e1:after_epoch:last.pt:middle            half of the bytes written to the temp file
    e1:after_epoch:last.pt:replaced          just after the rename made the new file the target
    e2:after_train:best.pt:middle            the same during the wrap-up (stripping best.pt)
Handler points exist for the after_epoch and after_train events; write points for every atomic_write of the run.
`instrumented(record=...)` lists a run's points in order, in-process, for a test to choose from.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import train
import utils.atomic_write
from engine.hooks.base import HookList

HANDLER_EVENTS = ("after_epoch", "after_train")


class _Points:
    """Names each point as the run passes it; records it, and kills the process at the chosen one."""

    def __init__(self, kill_at: str | None, record: list[str] | None) -> None:
        self.kill_at, self.record, self.context = kill_at, record, "setup"

    def reach(self, what: str) -> None:
        label = f"{self.context}:{what}"
        if self.record is not None:
            self.record.append(label)
        if label == self.kill_at:
            sys.stdout.flush()
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)


@contextlib.contextmanager
def instrumented(kill_at: str | None = None, record: list[str] | None = None) -> Iterator[None]:
    """Within the block, training passes the kill points: SIGKILL at `kill_at`, each label appended to `record`."""
    points = _Points(kill_at, record)
    original_fire, original_write_all, original_replace = HookList.fire, utils.atomic_write.write_all, os.replace

    def fire(self: HookList, event: str, trainer) -> None:
        points.context = f"e{trainer.epoch}:{event}"
        if event not in HANDLER_EVENTS:
            original_fire(self, event, trainer)
            return
        for handler in self.handlers[event]:
            owner = getattr(handler, "__self__", None)
            points.reach(f"before:{type(owner).__name__ if owner is not None else 'callbacks'}")
            handler(trainer)

    def write_all(fd: int, data) -> None:
        name = _target_name(fd)
        points.reach(f"{name}:start")
        view = memoryview(data).cast("B")
        half = len(view) // 2
        original_write_all(fd, view[:half])
        os.fsync(fd)  # what a killed process wrote is in the file, as the kernel would keep it
        points.reach(f"{name}:middle")
        original_write_all(fd, view[half:])

    def replace(src, dst, *args, **kwargs) -> None:
        original_replace(src, dst, *args, **kwargs)
        if Path(src).name.endswith(utils.atomic_write.TEMP_SUFFIX):
            points.reach(f"{Path(dst).name}:replaced")

    HookList.fire, utils.atomic_write.write_all, os.replace = fire, write_all, replace
    try:
        yield
    finally:
        HookList.fire, utils.atomic_write.write_all, os.replace = original_fire, original_write_all, original_replace


def _target_name(fd: int) -> str:
    """`last.pt` for the temp file `.last.pt.x1y2.tmp` open as `fd`."""
    temp = Path(os.readlink(f"/proc/self/fd/{fd}")).name
    return temp[len(utils.atomic_write.TEMP_PREFIX) :].rsplit(".", 2)[0]


def main(argv: list[str]) -> int:
    kill_at, train_args = argv[0], argv[1:]
    with instrumented(kill_at=kill_at):
        status = train.main(train_args)
    print(f"kill point {kill_at} not reached", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
