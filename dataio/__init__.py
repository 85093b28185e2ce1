"""Datasets for training and validation: data YAMLs, YOLO-format images and labels, checks, label cache,
augmentation, and deterministic data loaders.

- `data_config.load_data_config` reads a data YAML (`path`, `train`, `val`, `test`, `names`).
- `dataset.YoloDataset` checks every image and label once (cached), then loads, augments and letterboxes.
- `loader.build_dataloader` gives a per-epoch deterministic order; `multiscale.random_rescale_batch` rescales a
  batch to a random multiple of the stride.

Augmentation randomness is a function of (seed, epoch, index) only, so a resumed run sees the same batches.
"""
