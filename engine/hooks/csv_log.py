"""results.csv: one row per epoch, appended as training goes; a resumed run drops the rows it will redo."""

from __future__ import annotations

import csv
from typing import TYPE_CHECKING

from engine.hooks.logger import LoggerHook

if TYPE_CHECKING:
    from engine.trainer import Trainer


class CSVLogHook(LoggerHook):
    """Columns `epoch` and the names of `epoch_scalars`; the header is written with the file's first row."""

    def open(self, trainer: Trainer) -> None:
        self.path = trainer.save_dir / "results.csv"
        if self.path.exists():  # rows after the resumed checkpoint's epoch are redone
            with open(self.path, newline="") as f:
                rows = list(csv.reader(f))
            kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) < trainer.start_epoch]
            with open(self.path, "w", newline="") as f:
                csv.writer(f).writerows(kept)

    def log_scalars(self, values: dict[str, float], epoch: int) -> None:
        new_file = not self.path.exists()
        with open(self.path, "a", newline="") as f:
            writer = csv.writer(f)
            if new_file:
                writer.writerow(["epoch", *values])
            writer.writerow([epoch, *(f"{float(v):.6g}" for v in values.values())])
