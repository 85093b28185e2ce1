"""A full disk and read-only or forbidden storage, simulated by patching the OS calls (mounting a small or
read-only filesystem needs privileges a test does not have, and as root chmod blocks nothing): each failed write
is one StorageError line naming the path and the cause, the previous file stays whole and loadable, and no temp
file is left."""

from __future__ import annotations

import errno
import os
import re
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

import pytest
import torch

import train
from tests.fault_helpers import make_fault_data, temp_files, train_argv
from utils.atomic_write import atomic_write, ensure_directory, remove_orphan_temp_files
from utils.checkpoint import CHECKPOINT_FORMAT, load_checkpoint, write_checkpoint_file
from utils.errors import StorageError, UserError

REAL_WRITE = os.write


class FullDisk:
    """os.write for temp files of the targets named: the first `after` of them are written whole, each later one
    takes `room` bytes and then fails with ENOSPC, as a filling disk does. Other files are written normally."""

    def __init__(self, names: Iterable[str], after: int = 0, room: int = 1000) -> None:
        self.names, self.after, self.room = tuple(names), after, room
        self.seen: list[str] = []
        self.written: dict[str, int] = {}

    def __call__(self, fd: int, data) -> int:
        temp = Path(os.readlink(f"/proc/self/fd/{fd}")).name
        if not (temp.endswith(".tmp") and temp.startswith(tuple(f".{name}." for name in self.names))):
            return REAL_WRITE(fd, data)
        if temp not in self.seen:
            self.seen.append(temp)
        if self.seen.index(temp) < self.after:
            return REAL_WRITE(fd, data)
        left = self.room - self.written.get(temp, 0)
        if left <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        written = REAL_WRITE(fd, bytes(memoryview(data)[:left]))
        self.written[temp] = self.written.get(temp, 0) + written
        return written


def checkpoint(value: float) -> dict:
    return {"format": CHECKPOINT_FORMAT, "model": {"w": torch.full((4096,), value)}}


def test_a_full_disk_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_checkpoint_file(tmp_path / "weights" / "last.pt", checkpoint(1.0))
    monkeypatch.setattr(os, "write", FullDisk(["last.pt"]))
    with pytest.raises(StorageError) as error:
        write_checkpoint_file(path, checkpoint(2.0))
    assert str(error.value) == f"cannot write {path}: No space left on device"
    assert error.value.errno == errno.ENOSPC and isinstance(error.value, OSError) and isinstance(error.value, UserError)
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.full((4096,), 1.0))
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temp file left


def test_a_full_disk_keeps_results_csv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = atomic_write(tmp_path / "results.csv", "epoch,loss\n0,1.5\n")
    monkeypatch.setattr(os, "write", FullDisk(["results.csv"], room=5))
    with pytest.raises(StorageError, match=f"^cannot write {re.escape(str(path))}: No space left on device$"):
        atomic_write(path, "epoch,loss\n0,1.5\n1,1.2\n")
    assert path.read_text() == "epoch,loss\n0,1.5\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
def test_read_only_or_forbidden_storage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    path = atomic_write(tmp_path / "last.pt", b"old")

    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(StorageError, match=f"^cannot write {re.escape(str(path))}: {os.strerror(code)}$"):
        atomic_write(path, b"new")
    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(StorageError, match=f"^cannot create directory {tmp_path / 'new'}: {os.strerror(code)}$"):
        ensure_directory(tmp_path / "new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    if os.geteuid() != 0:  # where permissions apply, a real read-only directory fails the same way
        tmp_path.chmod(stat.S_IRUSR | stat.S_IXUSR)
        try:
            with pytest.raises(StorageError, match=f"^cannot write {re.escape(str(path))}: Permission denied$"):
                atomic_write(path, b"new")
        finally:
            tmp_path.chmod(stat.S_IRWXU)
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_orphan_temp_files_are_removed(tmp_path: Path) -> None:
    orphans = [tmp_path / ".last.pt.k2j4x_9a.tmp", tmp_path / ".results.csv.abc.tmp"]
    kept = [tmp_path / "last.pt", tmp_path / "notes.tmp", tmp_path / ".hidden"]
    for path in orphans + kept:
        path.write_bytes(b"x")
    assert remove_orphan_temp_files(tmp_path) == sorted(orphans)
    assert sorted(tmp_path.iterdir()) == sorted(kept)


def test_training_on_a_full_disk_exits_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    data, hyp = make_fault_data(tmp_path)
    # the disk fills after epoch 1's checkpoints: epoch 2 improves, and its best.pt is the first write to fail
    monkeypatch.setattr(os, "write", FullDisk(["best.pt", "last.pt"], after=2, room=100_000))
    assert train.main(train_argv(data, hyp, tmp_path, "full", 3)) == 2
    monkeypatch.undo()
    err = capsys.readouterr().err
    run = tmp_path / "full"
    errors = re.findall(r"error: .*", err)  # progress bars share stderr, with no newline before the error
    assert errors == [f"error: cannot write {run / 'weights' / 'best.pt'}: No space left on device"], err[-2000:]
    assert "Traceback" not in err
    last, best = load_checkpoint(run / "weights" / "last.pt"), load_checkpoint(run / "weights" / "best.pt")
    assert last["epoch"] == best["epoch"] == last["best_epoch"] == 0
    assert not temp_files(run)
