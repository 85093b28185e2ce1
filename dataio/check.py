"""Check a dataset from the command line: every problem with its file, and a summary per split.

python -m dataio.check trees.yaml
python -m dataio.check path/to/data.yaml --splits train val
"""

from __future__ import annotations

import argparse
import sys

from dataio.data_config import SPLITS, load_data_config
from dataio.scan import load_or_scan
from dataio.sources import list_images
from utils.cli import USER_ERRORS, report_user_error
from utils.logging import LOGGER


def main(argv: list[str] | None = None) -> int:
    """Scan the requested splits (using and refreshing the label cache); exit 1 if any file was skipped, 2 if
    the data YAML or a split cannot be used."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", help="data YAML: a path, or a file name under data/")
    parser.add_argument("--splits", nargs="+", choices=SPLITS, default=None, help="default: all defined")
    parser.add_argument("--cache-dir", default=None, help="where to keep label caches if not next to the labels")
    args = parser.parse_args(argv)
    try:
        return check_dataset(args.data, args.splits, args.cache_dir)
    except USER_ERRORS as e:
        return report_user_error(e)


def check_dataset(data: str, splits: list[str] | None = None, cache_dir: str | None = None) -> int:
    """Scan `splits` (default: all the data YAML defines) and log every problem; 1 if any file was skipped."""
    config = load_data_config(data)
    LOGGER.info(f"{config.file}: {config.nc} classes {config.names}, root {config.root}")
    skipped = 0
    for split in splits or [s for s in SPLITS if getattr(config, s)]:
        result = load_or_scan(list_images(config.split(split)), config.nc, cache_dir, prefix=f"{split}: ")
        skipped += result.counts["images_corrupt"] + result.counts["labels_corrupt"]
    return 1 if skipped else 0


if __name__ == "__main__":
    sys.exit(main())
