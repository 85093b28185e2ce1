"""results.csv: one row per epoch, appended as training goes (a resumed run keeps appending)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path


class ResultsLog:
    """Appends epoch rows to `save_dir/results.csv`, writing the header once."""

    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        self.path = Path(path)
        self.columns = ["epoch", *columns]

    def append(self, epoch: int, values: Sequence[float]) -> None:
        if len(values) != len(self.columns) - 1:
            raise ValueError(f"{self.path}: {len(values)} values for {len(self.columns) - 1} columns")
        new_file = not self.path.exists()
        with open(self.path, "a", newline="") as f:
            writer = csv.writer(f)
            if new_file:
                writer.writerow(self.columns)
            writer.writerow([epoch, *(f"{float(v):.6g}" for v in values)])

    def truncate_after(self, epoch: int) -> None:
        """Drop rows after `epoch` (a resumed run rewrites epochs the interrupted run logged but did not save)."""
        if not self.path.exists():
            return
        with open(self.path, newline="") as f:
            rows = list(csv.reader(f))
        kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= epoch]
        with open(self.path, "w", newline="") as f:
            csv.writer(f).writerows(kept)
