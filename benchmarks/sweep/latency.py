"""The sweep's latency stage: every trained config's best.pt, fused, and its exports, timed together at the end in
interleaved rounds (benchmarks/suite: the same export, runners and timing as `benchmarks/run.py`), so a slow spell
of a shared machine falls on all configs alike instead of on whichever was timed during it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory

import torch

from benchmarks.suite.ours import build_candidate
from benchmarks.suite.runners import Runner
from benchmarks.suite.timing import interleaved_medians
from benchmarks.sweep.configs import run_name
from benchmarks.sweep.options import SweepOptions
from benchmarks.sweep.runs import ConfigResult, first_line

FUSED = "eager fused"  # the suite's name for the fused PyTorch model, always timed
UNFUSED = "eager"  # the suite also builds the unfused model; a sweep compares deployable (fused) models only


@dataclass
class Latency:
    """One config's size (fused, at the sweep's imgsz) and median milliseconds per format."""

    parameters: int = 0
    gflops: float = 0.0
    ms: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # format (or "all") -> why it was not timed
    agreement: dict[str, float] = field(default_factory=dict)  # int8 format -> agreement with the fp32 model

    @property
    def fastest(self) -> tuple[str, float] | None:
        """(format, ms) of the fastest format timed, if any."""
        return min(self.ms.items(), key=lambda item: item[1]) if self.ms else None


def format_columns(options: SweepOptions) -> list[str]:
    """The latency columns of this sweep, in order: fused PyTorch, each --formats entry, the int8 ones."""
    int8 = [f"{name} int8" for name in ("onnx", "openvino")] if options.int8 else []
    return [FUSED, *options.formats, *int8]


def time_configs(
    results: Sequence[ConfigResult], options: SweepOptions, say: Callable[[str], None] = print
) -> dict[str, Latency]:
    """Latency per trained config (batch 1, --imgsz, --threads): export each best.pt to --formats (and int8 with
    --int8), then time every (config, format) pair once per round in a new random order, --runs rounds."""
    torch.set_num_threads(options.threads or torch.get_num_threads())  # ONNX Runtime and OpenVINO follow torch's
    latencies = {r.config: Latency() for r in results if r.status == "done"}
    runners: dict[str, Runner] = {}
    owners: dict[str, tuple[str, str]] = {}  # runner key -> (config, format)
    with TemporaryDirectory(prefix="sweep_latency_") as workdir:
        for config, latency in latencies.items():
            folder = Path(workdir) / run_name(config)
            folder.mkdir()
            best = next(r.best for r in results if r.config == config)
            say(f"exporting {best} to {', '.join(options.formats) or 'no other format'}")
            try:
                candidate = build_candidate(
                    str(best),
                    options.imgsz,
                    folder,
                    tuple(options.formats),
                    int8_data=options.data if options.int8 else None,
                    calib_images=options.calib_images,
                )
            except Exception as e:  # a model that cannot be loaded or fused here: said in its row, others go on
                latency.errors["all"] = f"{type(e).__name__}: {first_line(e)}"
                continue
            latency.parameters, latency.gflops = candidate.parameters, candidate.gflops
            latency.errors.update(candidate.errors)
            latency.agreement.update(candidate.agreement)
            for name, runner in candidate.runners.items():
                if name != UNFUSED:
                    key = f"{len(runners)}"
                    runners[key], owners[key] = runner, (config, name)
        say(
            f"timing {len(runners)} models ({len(latencies)} configs x formats) at {options.imgsz} px, batch 1, "
            f"{torch.get_num_threads()} threads: {options.runs} interleaved rounds"
        )
        for key, ms in interleaved_medians(runners, options.runs).items():
            config, name = owners[key]
            latencies[config].ms[name] = ms
    return latencies
