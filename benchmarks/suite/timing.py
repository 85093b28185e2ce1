"""Interleaved timing: every candidate runs once per round, in a new random order each round, so a slow spell of a
shared machine falls on all of them alike instead of on whichever ran during it."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Mapping


def interleaved_medians(
    candidates: Mapping[str, Callable[[], object]], runs: int, warmup: int = 2, seed: int = 0
) -> dict[str, float]:
    """Median milliseconds of each candidate over `runs` rounds, after `warmup` untimed calls of each."""
    for run in candidates.values():
        for _ in range(warmup):
            run()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    order = list(candidates)
    shuffler = random.Random(seed)
    for _ in range(runs):
        shuffler.shuffle(order)
        for name in order:
            start = time.perf_counter()
            candidates[name]()
            times[name].append((time.perf_counter() - start) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}
