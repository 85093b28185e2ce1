"""Writing a run's files so that a kill or a full disk never leaves a half-written one in place.

Every checkpoint and results file goes through `atomic_write`: the bytes go to a temp file beside the target
(`.NAME.XXXXXX.tmp`), are fsynced, and replace the target in one rename. A kill at any moment leaves either the
old file or the new one, plus at most an orphan temp file, which `remove_orphan_temp_files` deletes when the run
starts or resumes. A failed write (disk full, read-only storage, no permission) removes its temp file and raises
StorageError naming the path and the cause in one line; the previous file stays as it was.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from utils.errors import StorageError
from utils.logging import LOGGER

TEMP_PREFIX, TEMP_SUFFIX = ".", ".tmp"

# mkstemp creates files readable by their owner only; results and checkpoints get the usual mode instead.
_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK


def storage_error(path: str | Path, error: OSError, action: str = "write") -> StorageError:
    """`cannot write PATH: No space left on device`: the OS's one-line reason, with the errno kept on the error
    (not the filename: OSError would then print its own `[Errno N] ...` text instead of the message)."""
    reason = os.strerror(error.errno) if error.errno else (str(error) or type(error).__name__)
    storage = StorageError(f"cannot {action} {path}: {reason}")
    storage.errno = error.errno
    return storage


def write_all(fd: int, data: bytes | memoryview) -> None:
    """os.write until every byte is written (a write may take fewer than it was given)."""
    view = memoryview(data).cast("B")
    while view:
        written = os.write(fd, view)
        view = view[written:]


def atomic_write(path: str | Path, data: bytes | memoryview | str) -> Path:
    """Write `data` (str as UTF-8) to `path` through a fsynced temp file in the same directory and one rename.

    Raises StorageError (an OSError) when the directory cannot be created or the file cannot be written; no temp
    file is left behind and an existing `path` is untouched.
    """
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f"{TEMP_PREFIX}{path.name}.", suffix=TEMP_SUFFIX)
        try:
            os.fchmod(fd, FILE_MODE)
            write_all(fd, data)
            os.fsync(fd)  # the bytes are on disk before the rename makes them the file
        finally:
            os.close(fd)
        os.replace(tmp, path)
        tmp = None
    except OSError as e:
        raise storage_error(path, e) from e
    finally:
        if tmp is not None:
            _remove_quietly(Path(tmp))
    _sync_directory(path.parent)
    return path


def ensure_directory(path: str | Path) -> Path:
    """mkdir -p, with a failure (read-only storage, no permission) as one-line StorageError."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise storage_error(path, e, action="create directory") from e
    return path


def remove_orphan_temp_files(directory: str | Path) -> list[Path]:
    """Delete the temp files `atomic_write` left in `directory` when a kill interrupted it; returns them."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    orphans = sorted(p for p in directory.glob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}") if p.is_file())
    for orphan in orphans:
        _remove_quietly(orphan)
    if orphans:
        LOGGER.info(f"Removed {len(orphans)} unfinished temp file(s) of an interrupted write in {directory}")
    return orphans


def _remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):  # already gone, or the storage refuses even this: nothing more to do
        path.unlink()


def _sync_directory(directory: Path) -> None:
    """fsync the directory so the rename itself survives a power loss; best effort (not every OS allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
