"""Where an OpenVINO model spends its time on this CPU: per-operation times from OpenVINO's own counters, summed
by (operation, kernel), e.g. how much of an int8 model still runs in fp32 kernels.

    python export.py --weights best.pt --include openvino --int8 --imgsz 640
    python benchmarks/openvino_profile.py best_int8_openvino_model            # a folder or its .xml
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np


def profile(xml: Path, threads: int, runs: int, warmup: int = 5) -> tuple[dict[tuple[str, str], float], float]:
    """Mean milliseconds per inference by (operation type, kernel), and the mean total."""
    import openvino as ov

    compiled = ov.Core().compile_model(str(xml), "CPU", {"INFERENCE_NUM_THREADS": threads, "PERF_COUNT": True})
    request = compiled.create_infer_request()
    shape = [int(d) for d in compiled.input(0).shape]
    image = np.random.default_rng(0).random(shape, dtype=np.float32)
    for _ in range(warmup):
        request.infer([image])
    times: dict[tuple[str, str], float] = defaultdict(float)
    for _ in range(runs):
        request.infer([image])
        for op in request.profiling_info:
            times[(op.node_type, op.exec_type)] += op.real_time.total_seconds() * 1000 / runs
    return dict(times), sum(times.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="an OpenVINO export folder or its .xml")
    parser.add_argument("--threads", type=int, default=2, help="INFERENCE_NUM_THREADS (default: 2)")
    parser.add_argument("--runs", type=int, default=10, help="inferences averaged (default: 10)")
    parser.add_argument("--top", type=int, default=12, help="rows shown (default: 12)")
    args = parser.parse_args()
    xml = next(args.model.glob("*.xml")) if args.model.is_dir() else args.model
    times, total = profile(xml, args.threads, args.runs)
    print(f"{xml} ({args.threads} threads, mean of {args.runs}): {total:.1f} ms in OpenVINO's counters")
    print(f"{'operation':24s} {'kernel':28s} {'ms':>7s} {'share':>6s}")
    for (op, kernel), ms in sorted(times.items(), key=lambda item: -item[1])[: args.top]:
        print(f"{op:24s} {kernel:28s} {ms:7.2f} {ms / total:6.1%}")


if __name__ == "__main__":
    main()
