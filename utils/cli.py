"""What the command-line scripts share: a user's mistake (a missing file, a bad value or config) ends the run
with one `error: ...` line on stderr and exit status 2 instead of a traceback. Only the project's `UserError`
is caught: a plain ValueError or OSError is a bug or an unexpected failure and keeps its traceback."""

from __future__ import annotations

import sys

from utils.errors import UserError

# Every error the library raises for bad input derives from UserError (utils/errors.py); many also keep a
# ValueError or FileNotFoundError base for callers that catch those.
USER_ERRORS: tuple[type[Exception], ...] = (UserError,)
USER_ERROR_STATUS = 2


def report_user_error(error: Exception) -> int:
    """Print `error: <message>` on stderr (after what the run printed on stdout) and return the exit status of a
    run stopped by bad input (2)."""
    sys.stdout.flush()
    print(f"error: {error}", file=sys.stderr, flush=True)
    return USER_ERROR_STATUS
