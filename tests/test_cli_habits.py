"""The command-line habits yolov5 and ultralytics users bring: --img/--img-size on every script, choices in any
case, a bare --cache, --cache disk and --noautoanchor reaching the data pipeline and the head, val.py's per-class
switch, and the scripts' options as Python keywords."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

import models.heads.anchor_detect
import models.yolo
from dataio.dataset import YoloDataset
from dataio.disk_cache import npy_path
from dataio.image_io import read_image
from engine.export_options import ExportOptions
from engine.predict_options import PredictOptions
from engine.train_options import TrainOptions
from engine.trainer import Trainer
from engine.val_options import ValOptions
from models.detection_model import DetectionModel
from models.summary import gflops
from tests.synthetic_data import make_synthetic_dataset
from utils.errors import OptionError
from utils.options import options_from_keywords, parse_options


@pytest.mark.parametrize("options_class", [TrainOptions, ValOptions, PredictOptions, ExportOptions])
@pytest.mark.parametrize("flag", ["--img-size", "--img", "--imgsz"])
def test_every_script_takes_the_image_size_aliases(options_class: type, flag: str) -> None:
    imgsz = parse_options(options_class, [flag, "96"]).imgsz
    assert imgsz in (96, [96])
    assert models.yolo.parse_args([flag, "96"]).imgsz == 96  # python models/yolo.py, the summary script


def test_choices_in_any_case_are_stored_as_declared() -> None:
    train = parse_options(TrainOptions, ["--optimizer", "sgd", "--cache", "DISK"])
    assert (train.optimizer, train.cache) == ("SGD", "disk")
    assert parse_options(TrainOptions, ["--optimizer", "ADAMW"]).optimizer == "AdamW"
    assert TrainOptions(optimizer="adam").optimizer == "Adam"  # from Python too
    assert parse_options(ValOptions, ["--task", "Speed"]).task == "speed"
    assert list(parse_options(ExportOptions, ["--include", "ONNX", "TorchScript"]).include) == ["onnx", "torchscript"]
    with pytest.raises(OptionError, match="--optimizer rmsprop: choose from SGD, Adam, AdamW"):
        TrainOptions(optimizer="rmsprop")


def test_bare_cache_is_ram_and_val_per_class_is_a_three_way_switch() -> None:
    assert parse_options(TrainOptions, ["--cache"]).cache == "ram"  # yolov5: --cache alone caches in RAM
    assert TrainOptions().cache == "auto" and TrainOptions().noautoanchor is False
    assert parse_options(TrainOptions, ["--noautoanchor"]).noautoanchor is True
    verbose = [parse_options(ValOptions, argv).verbose for argv in ([], ["--verbose"], ["--no-verbose"])]
    assert verbose == [None, True, False]  # None: per class when the data has at most 20 classes


def test_options_as_python_keywords_take_the_flag_aliases() -> None:
    options = options_from_keywords(TrainOptions, {"img": 64, "batch": 2, "optimizer": "sgd"}, "f()")
    assert (options.imgsz, options.batch_size, options.optimizer) == (64, 2, "SGD")
    predict = options_from_keywords(PredictOptions, {"conf": 0.5, "iou": 0.6, "img_size": [64]}, "f()")
    assert (predict.conf_thres, predict.iou_thres, predict.imgsz) == (0.5, 0.6, [64])
    with pytest.raises(OptionError, match=r"YOLO.train\(\): unknown option 'epoch'; did you mean epochs"):
        options_from_keywords(TrainOptions, {"epoch": 3}, "YOLO.train()")
    with pytest.raises(OptionError, match="both given"):
        options_from_keywords(TrainOptions, {"imgsz": 64, "img": 96}, "f()")
    with pytest.raises(OptionError, match="--epochs 0: must be >= 1"):
        options_from_keywords(TrainOptions, {"epochs": 0}, "f()")


def _set_up(data: Path, project: Path, **options) -> Trainer:
    """A Trainer with its model, data and loss built (no step taken)."""
    values = dict(cfg="yolov5n.yaml", data=str(data), imgsz=64, batch_size=2, epochs=1, workers=0, noplots=True)
    trainer = Trainer(TrainOptions(**values, project=str(project), **options))
    trainer.setup()
    return trainer


def test_noautoanchor_and_cache_disk_reach_the_pipeline(tmp_path: Path, monkeypatch) -> None:
    data = make_synthetic_dataset(tmp_path / "data", n_train=3, n_val=2, imgsz=64, nc=2)
    checked = []
    monkeypatch.setattr(models.heads.anchor_detect, "check_anchors", lambda *a, **k: checked.append(1))

    trainer = _set_up(data, tmp_path / "runs", noautoanchor=True, cache="disk")
    assert not checked  # AutoAnchor never ran
    for dataset in (trainer.train_set, trainer.val_set):
        assert dataset._images is None  # not in RAM ...
        for image in dataset.image_files:  # ... but decoded once into .npy files beside the images
            cached = np.load(npy_path(image), allow_pickle=False)
            assert np.array_equal(cached, read_image(image))
    plain = YoloDataset(data.parent / "images" / "val", imgsz=64, nc=2)
    image, labels, path, _ = trainer.val_set[0]
    other_image, other_labels, other_path, _ = plain[0]
    assert path == other_path and torch.equal(image, other_image) and torch.equal(labels, other_labels)

    _set_up(data, tmp_path / "runs", cache="none")
    assert checked == [1]  # without the flag the anchor head checks its anchors


def test_disk_cache_ignores_stale_and_unsafe_files(tmp_path: Path) -> None:
    data = make_synthetic_dataset(tmp_path / "data", n_train=2, n_val=1, imgsz=64, nc=2)
    images = sorted((data.parent / "images" / "train").glob("*.png"))
    first, second = images
    np.save(npy_path(first), np.zeros((8, 8, 3), np.uint8))  # stale: older than its image
    os.utime(npy_path(first), ns=(1, 1))
    np.save(npy_path(second), np.array([{"payload": 1}], dtype=object), allow_pickle=True)  # would need pickle
    YoloDataset(data.parent / "images" / "train", imgsz=64, nc=2, cache_images="disk")
    for image in images:  # both rewritten from the images themselves
        cached = np.load(npy_path(image), allow_pickle=False)
        assert cached.shape == (64, 64, 3) and np.array_equal(cached, read_image(image))


class _Breaks(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("cannot be traced")


def test_training_summary_profiles_in_place_and_leaves_the_model_as_it_was() -> None:
    """The summary at the start of training profiles the live model (no copy): same GFLOPs as on a copy, and no
    counter buffer or hook left behind, even when the profile fails half-way."""
    model = DetectionModel("yolov5n.yaml", nc=2)
    keys = list(model.state_dict())
    assert gflops(model, in_place=True) == gflops(model) > 0
    assert list(model.state_dict()) == keys and model.training
    broken = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), _Breaks())
    assert gflops(broken, in_place=True) is None
    assert not any(m._forward_hooks for m in broken.modules()) and list(broken.state_dict()) == [
        "0.weight",
        "0.bias",
        "1.weight",
        "1.bias",
        "1.running_mean",
        "1.running_var",
        "1.num_batches_tracked",
    ]
