"""The project's error types for what a user did wrong (a bad argument, file, config or storage state).

Scripts turn a `UserError` into one `error: ...` line and exit status 2 (utils/cli.py); any other exception is
a bug or an unexpected failure and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """Base of every error caused by the user's input or environment, reported as one line by the scripts."""


class StorageError(UserError, OSError):
    """Writing a run's files failed for a reason outside the program (disk full, read-only storage, no
    permission); the message names the path and the cause."""


class OptionError(UserError, ValueError):
    """A command-line option (or the same argument of the Python API) with a value the run cannot use; the
    message starts with the flag, e.g. `--epochs 0: must be >= 1`."""


class UnsafePathError(UserError, ValueError):
    """A file name built from data (a class name, a source file's name) that would leave the run directory."""
