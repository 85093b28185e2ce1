"""Train a YOLO detector.

python train.py --cfg yolov5s_mobileone.yaml            # bundled trees data, defaults tuned to learn fast
python train.py --cfg yolo11n.yaml --data my.yaml --epochs 100 --imgsz 640
python train.py --resume                                # continue the newest run exactly
python train.py --cfg yolo11n.yaml --epochs 5 --evolve 30   # hyperparameter search: best_hyp.yaml in runs/evolve/exp
torchrun --nproc_per_node 2 train.py --cfg yolo11n.yaml # several processes (GPUs, or CPU with gloo)
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from engine.evolve_options import EvolveOptions  # noqa: E402
from engine.train_options import TrainOptions  # noqa: E402
from engine.trainer import train  # noqa: E402
from utils.cli import USER_ERRORS, report_user_error  # noqa: E402
from utils.options import parse_option_groups  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    options, search = parse_option_groups((TrainOptions, EvolveOptions), argv, description=__doc__)
    try:
        if search.evolve:
            from engine.evolve import evolve_hyperparameters  # optuna is imported only for a search

            evolve_hyperparameters(options, search)
        else:
            train(options)
    except USER_ERRORS as e:
        return report_user_error(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
