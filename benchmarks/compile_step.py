"""Does torch.compile make the training step faster on CPU? Times one forward + loss + backward + SGD step of the same
model (same seed, the trainer's channels-last layout) eager and with the model's forward compiled (inductor; the
loss stays eager), taking turns step by step in one process (random order each round); reports the compile time (the
first step) and the median of each.

    python benchmarks/compile_step.py --cfg yolov5s_mobileone.yaml --imgsz 416 --batch 16 --rounds 3
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


from benchmarks.channels_last_step import make_step, print_step_medians  # noqa: E402
from benchmarks.suite.timing import interleaved_medians  # noqa: E402

TRAINER_LAYOUT = "channels-last (trainer)"  # the layout train.py trains in on CPU


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cfg", default="yolov5s_mobileone.yaml")
    p.add_argument("--imgsz", type=int, default=416)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--rounds", type=int, default=3, help="timed steps of each, after two warm-up steps each")
    args = p.parse_args()
    steps = {
        name: make_step(args.cfg, TRAINER_LAYOUT, args.imgsz, args.batch, compiled=name == "compiled")
        for name in ("eager", "compiled")
    }
    for name, step in steps.items():
        print(f"{name}: first step {step():.1f} s", flush=True)  # the compiled one compiles here
    # a second warm-up each: oneDNN primitives, the compiled graph's first real run
    medians = interleaved_medians(steps, runs=args.rounds, warmup=1)
    print_step_medians(args, medians, baseline="eager")
    return 0


if __name__ == "__main__":
    sys.exit(main())
