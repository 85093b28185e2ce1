"""Compare backbones on your data: train each config at equal epochs, validate, time them all on the CPU, and plot
mAP50-95 against latency with the Pareto front.

python sweep.py --cfgs yolo11n.yaml yolo11n_mobilenetv4.yaml yolo11n_mobileone.yaml --epochs 10 --imgsz 320
python sweep.py --cfgs all --scale n --data my.yaml --epochs 30   # every config under cfg/ at scale n
python sweep.py --cfgs ... --formats onnx --int8 --runs 50        # which formats are timed, and how often

Each config trains in <project>/<name>/<config> (default runs/sweep/exp); the same command again skips finished
configs and resumes an interrupted one from its last.pt. A config that fails is reported with its reason and the
sweep goes on. Results: sweep.csv, sweep.md and sweep.png in <project>/<name>.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from benchmarks.sweep.options import SweepOptions  # noqa: E402
from benchmarks.sweep.sweep import run_sweep  # noqa: E402
from utils.cli import USER_ERRORS, report_user_error  # noqa: E402
from utils.options import parse_options  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    options = parse_options(SweepOptions, argv, description=__doc__)
    command = shlex.join(["python", "sweep.py", *(sys.argv[1:] if argv is None else argv)])
    try:
        run_sweep(options, command)
    except USER_ERRORS as e:
        return report_user_error(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
