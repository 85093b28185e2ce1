"""What the command-line scripts share: a user's mistake (a missing file, a bad value or config) ends the run
with one `error: ...` line on stderr and exit status 2 instead of a traceback."""

from __future__ import annotations

import sys

# Every error the library raises for bad input derives from one of these: ConfigError, DataConfigError,
# CheckpointError, SourceError and BackboneWeightsError are ValueErrors; NoWeightsError and DatasetSourceError
# are FileNotFoundErrors.
USER_ERRORS: tuple[type[Exception], ...] = (FileNotFoundError, ValueError)
USER_ERROR_STATUS = 2


def report_user_error(error: Exception) -> int:
    """Print `error: <message>` on stderr (after what the run printed on stdout) and return the exit status of a
    run stopped by bad input (2)."""
    sys.stdout.flush()
    print(f"error: {error}", file=sys.stderr, flush=True)
    return USER_ERROR_STATUS
