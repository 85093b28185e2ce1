"""results.csv: one row per epoch, the whole file rewritten atomically after each; a resumed run drops the rows it
will redo."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING

from engine.hooks.logger import LoggerHook
from utils.atomic_write import atomic_write

if TYPE_CHECKING:
    from engine.trainer import Trainer


class CSVLogHook(LoggerHook):
    """Columns `epoch` and the names of `epoch_scalars`; the header comes with the first row.

    The file is small (one row per epoch), so each epoch rewrites it through a temp file and a rename: a kill or a
    full disk leaves the previous version whole, never a torn row or a file cut short.
    """

    def open(self, trainer: Trainer) -> None:
        self.path = trainer.save_dir / "results.csv"
        self.rows: list[list[str]] = []
        if self.path.exists():  # rows from the resumed checkpoint's next epoch on are redone
            with open(self.path, newline="") as f:
                rows = list(csv.reader(f))
            self.rows = rows[:1] + [r for r in rows[1:] if r and int(r[0]) < trainer.start_epoch]
            if len(self.rows) < len(rows):
                self._write()

    def log_scalars(self, values: dict[str, float], epoch: int) -> None:
        if not self.rows:
            self.rows.append(["epoch", *values])
        self.rows.append([str(epoch), *(f"{float(v):.6g}" for v in values.values())])
        self._write()

    def _write(self) -> None:
        text = io.StringIO()
        csv.writer(text).writerows(self.rows)
        atomic_write(self.path, text.getvalue())
