"""The four scripts' options: every dataclass field is a flag and every flag a field, each default written once
(the parser's, the dataclass's and the Python API's agree), and every flag users know still parses as before."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
from dataclasses import dataclass
from typing import Any

import pytest

import detect
import export
import train
import val
from engine.api import Detector
from engine.detect import detect as detect_run
from engine.export import export as export_run
from engine.export_options import ExportOptions
from engine.formats import export_format_names
from engine.predict import Predictor, postprocess
from engine.predict_options import PredictOptions
from engine.train_options import TrainOptions
from engine.val_options import ValOptions
from utils.errors import OptionError, UserError
from utils.options import build_parser, option, parse_options

# script module, its options class, the library call the script hands the options to
SCRIPTS = {
    "train": (train, TrainOptions, "train"),
    "val": (val, ValOptions, "run_val"),
    "detect": (detect, PredictOptions, "detect"),
    "export": (export, ExportOptions, "export"),
}

# Every flag (and alias) the scripts had before they were generated from the dataclasses, with its field.
KNOWN_FLAGS = {
    "train": {
        "--cfg": "cfg", "--data": "data", "--hyp": "hyp", "--weights": "weights",
        "--backbone-weights": "backbone_weights", "--scale": "scale", "--epochs": "epochs",
        "--batch-size": "batch_size", "--imgsz": "imgsz", "--img": "imgsz", "--optimizer": "optimizer",
        "--cos-lr": "cos_lr", "--label-smoothing": "label_smoothing", "--patience": "patience",
        "--freeze": "freeze", "--close-mosaic": "close_mosaic", "--multi-scale": "multi_scale", "--rect": "rect",
        "--single-cls": "single_cls", "--sync-bn": "sync_bn", "--cache": "cache", "--workers": "workers",
        "--device": "device", "--project": "project", "--name": "name", "--exist-ok": "exist_ok",
        "--resume": "resume", "--seed": "seed", "--save-period": "save_period", "--noval": "noval",
        "--noplots": "noplots", "--nbs": "nbs", "--min-warmup-iters": "min_warmup_iters",
        "--bn-momentum": "bn_momentum", "--val-iou-thres": "val_iou_thres", "--no-amp": "amp",
        "--no-channels-last": "channels_last",
    },
    "val": {
        "--weights": "weights", "--data": "data", "--imgsz": "imgsz", "--img": "imgsz", "--batch-size": "batch_size",
        "--batch": "batch_size", "--conf-thres": "conf_thres", "--iou-thres": "iou_thres", "--max-det": "max_det",
        "--task": "task", "--single-cls": "single_cls", "--rect": "rect", "--augment": "augment",
        "--verbose": "verbose", "--save-txt": "save_txt", "--save-conf": "save_conf", "--save-json": "save_json",
        "--plots": "plots", "--no-plots": "plots", "--device": "device", "--half": "half", "--workers": "workers",
        "--project": "project", "--name": "name", "--exist-ok": "exist_ok", "--runs-dir": "runs_dir",
    },
    "detect": {
        "--weights": "weights", "--source": "source", "--imgsz": "imgsz", "--img": "imgsz", "--img-size": "imgsz",
        "--conf-thres": "conf_thres", "--iou-thres": "iou_thres", "--max-det": "max_det", "--device": "device",
        "--classes": "classes", "--agnostic-nms": "agnostic_nms", "--save-txt": "save_txt",
        "--save-conf": "save_conf", "--save-crop": "save_crop", "--nosave": "nosave",
        "--line-thickness": "line_thickness", "--hide-labels": "hide_labels", "--hide-conf": "hide_conf",
        "--vid-stride": "vid_stride", "--half": "half", "--runs-dir": "runs_dir", "--project": "project",
        "--name": "name", "--exist-ok": "exist_ok",
    },
    "export": {
        "--weights": "weights", "--include": "include", "--imgsz": "imgsz", "--img": "imgsz", "--img-size": "imgsz",
        "--batch": "batch", "--batch-size": "batch", "--dynamic": "dynamic", "--simplify": "simplify",
        "--opset": "opset", "--half": "half", "--int8": "int8", "--data": "data", "--calib-images": "calib_images",
        "--min-agreement": "min_agreement", "--accept-low-agreement": "accept_low_agreement", "--device": "device",
        "--runs-dir": "runs_dir",
    },
}  # fmt: skip


def _actions(options_class: type) -> list[argparse.Action]:
    return [a for a in build_parser(options_class)._actions if a.dest != "help"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_field_is_a_flag_and_every_flag_a_field(script: str) -> None:
    _, options_class, _ = SCRIPTS[script]
    actions = _actions(options_class)
    fields = {f.name: f for f in dataclasses.fields(options_class)}
    assert sorted(a.dest for a in actions) == sorted(fields)  # one flag per field, no flag without a field
    for action in actions:
        assert action.default == fields[action.dest].default, action.dest  # the parser's default is the field's
        assert action.help, f"{action.dest} has no help text"
        if isinstance(fields[action.dest].default, bool):  # switches: --flag, or --flag/--no-flag when on
            negatable = isinstance(action, argparse.BooleanOptionalAction)
            assert negatable == fields[action.dest].default, action.dest


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_script_parses_into_its_dataclass_with_its_defaults(script: str, monkeypatch) -> None:
    module, options_class, runner = SCRIPTS[script]
    received: list[Any] = []
    monkeypatch.setattr(module, runner, lambda *args, **kwargs: received.append((args, kwargs)) or _ok())
    assert module.main([]) == 0
    ((args, kwargs),) = received
    given = args[0] if args else options_class(**kwargs)  # train/val take the dataclass, detect/export its fields
    assert given == options_class()


def _ok() -> Any:
    """What the patched library calls return: enough for each script's exit status to be 0."""
    return type("Ok", (list,), {"failures": [], "results": [1]})()


@pytest.mark.parametrize("script", SCRIPTS)
def test_flags_users_know_still_parse(script: str) -> None:
    _, options_class, _ = SCRIPTS[script]
    by_flag = {flag: a.dest for a in _actions(options_class) for flag in a.option_strings}
    missing = {flag: dest for flag, dest in KNOWN_FLAGS[script].items() if by_flag.get(flag) != dest}
    assert not missing


def test_values_parse_as_before() -> None:
    o = parse_options(TrainOptions, ["--img", "320", "--batch", "8", "--no-amp", "--resume", "--freeze", "3"])
    assert (o.imgsz, o.batch_size, o.amp, o.resume, o.freeze, o.channels_last) == (320, 8, False, True, "3", True)
    assert parse_options(TrainOptions, ["--resume", "runs/train/exp/weights/last.pt"]).resume.endswith("last.pt")
    assert parse_options(TrainOptions, ["--workers", "0", "--bn-momentum", "0.03"]).bn_momentum == 0.03
    o = parse_options(TrainOptions, ["--no-deterministic", "--max-grad-norm", "5", "--no-channels-last"])
    assert (o.deterministic, o.max_grad_norm, o.channels_last) == (False, 5.0, False)  # fields that had no flag
    assert parse_options(ValOptions, ["--no-plots", "--task", "speed", "--batch", "4"]) == ValOptions(
        plots=False, task="speed", batch_size=4
    )
    o = parse_options(PredictOptions, ["--img-size", "64", "96", "--classes", "0", "2", "--conf-thres", "0.5"])
    assert (o.imgsz, o.classes, o.conf_thres) == ([64, 96], [0, 2], 0.5)
    o = parse_options(ExportOptions, ["--include", "onnx", "--batch-size", "2", "--img", "64"])
    assert (list(o.include), o.batch, o.imgsz) == (["onnx"], 2, [64])


@pytest.mark.parametrize(
    ("options_class", "argv"),
    [
        (TrainOptions, ["--optimizer", "rmsprop"]),
        (TrainOptions, ["--epochs", "ten"]),
        (ValOptions, ["--task", "train"]),
        (ExportOptions, ["--include", "tflite"]),
        (PredictOptions, ["--no-such-flag"]),
    ],
)
def test_bad_values_exit_with_status_2(options_class: type, argv: list[str], capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        parse_options(options_class, argv)
    assert stopped.value.code == 2 and argv[0] in capsys.readouterr().err


def test_choices_come_from_the_registries() -> None:
    choices = {a.dest: a.choices for a in _actions(ExportOptions) + _actions(TrainOptions)}
    assert list(choices["include"]) == export_format_names() and tuple(choices["optimizer"]) == ("SGD", "Adam", "AdamW")


def test_library_defaults_are_the_options_defaults() -> None:
    """detect(), export(), Detector, Predictor and postprocess declare no default of their own."""
    predict = PredictOptions()
    for function, names in [
        (detect_run, [f.name for f in dataclasses.fields(PredictOptions)]),
        (Detector.__init__, ["device", "imgsz", "conf_thres", "iou_thres", "classes", "agnostic_nms", "max_det"]),
        (Predictor.__init__, ["imgsz", "conf_thres", "iou_thres", "classes", "agnostic_nms", "max_det"]),
    ]:
        parameters = inspect.signature(function).parameters
        assert {n: parameters[n].default for n in names} == {n: getattr(predict, n) for n in names}, function
    parameters = inspect.signature(postprocess).parameters
    assert (
        (parameters["conf_thres"].default, parameters["iou_thres"].default)
        == (0.25, 0.45)
        == (
            predict.conf_thres,
            predict.iou_thres,
        )
    )
    parameters = inspect.signature(export_run).parameters
    assert {f.name: parameters[f.name].default for f in dataclasses.fields(ExportOptions)} == dataclasses.asdict(
        ExportOptions()
    )
    assert ValOptions().conf_thres == 0.001 and PredictOptions().conf_thres == 0.25  # val scores, detect shows


def test_a_field_without_option_is_an_error_and_help_shows_defaults() -> None:
    @dataclass
    class Partial:
        size: int = option(64, help="image size (pixels)", aliases=("--img",))
        ratio: float = option(0.5, help="at most 50% of it")
        hidden: int = 3

    with pytest.raises(TypeError, match="Partial.hidden is not declared with option"):
        build_parser(Partial)

    @dataclass
    class Complete:
        size: int = option(64, help="image size (pixels)", aliases=("--img",))
        ratio: float = option(0.5, help="at most 50% of it")
        sizes: list[int] | None = option(None, help="several sizes")

    text = build_parser(Complete).format_help()
    assert "image size (pixels) (default: 64)" in text and "at most 50% of it (default: 0.5)" in text
    assert parse_options(Complete, ["--img", "32", "--sizes", "1", "2"]) == Complete(32, 0.5, [1, 2])


# -- values out of limits: one `error:` line naming the flag, exit status 2, before anything is read or created --
BAD_VALUES = [
    ("train", ["--batch-size", "0"], "--batch-size 0: must be >= 1"),
    ("train", ["--epochs", "0"], "--epochs 0: must be >= 1"),
    ("train", ["--epochs", "-3"], "--epochs -3: must be >= 1"),
    ("train", ["--imgsz", "0"], "--imgsz 0: must be >= 1"),
    ("train", ["--img", "-64"], "--imgsz -64: must be >= 1"),
    ("train", ["--workers", "-1"], "--workers -1: must be >= 0"),
    ("train", ["--nbs", "0"], "--nbs 0: must be >= 1"),
    ("train", ["--patience", "-1"], "--patience -1: must be >= 0"),
    ("train", ["--close-mosaic", "-1"], "--close-mosaic -1: must be >= 0"),
    ("train", ["--label-smoothing", "1.5"], "--label-smoothing 1.5: must be <= 1"),
    ("train", ["--max-grad-norm", "0"], "--max-grad-norm 0.0: must be > 0"),
    ("train", ["--bn-momentum", "0"], "--bn-momentum 0.0: must be > 0"),
    ("train", ["--freeze", "some"], "--freeze some: use 'backbone' or a layer count"),
    ("train", ["--save-period", "-2"], "--save-period -2: must be >= -1"),
    ("val", ["--imgsz", "0"], "--imgsz 0: must be >= 1"),
    ("val", ["--batch-size", "0"], "--batch-size 0: must be >= 1"),
    ("val", ["--conf-thres", "1.5"], "--conf-thres 1.5: must be <= 1"),
    ("val", ["--iou-thres", "-0.1"], "--iou-thres -0.1: must be >= 0"),
    ("val", ["--max-det", "0"], "--max-det 0: must be >= 1"),
    ("val", ["--conf-thres", "nan"], "--conf-thres nan: must be a number"),
    ("val", ["--workers", "-1"], "--workers -1: must be >= 0"),
    ("detect", ["--imgsz", "0"], "--imgsz 0: sizes must be >= 1 pixel"),
    ("detect", ["--imgsz", "64", "64", "64"], "--imgsz 64 64 64: takes one size or 'h w'"),
    ("detect", ["--conf-thres", "2"], "--conf-thres 2.0: must be <= 1"),
    ("detect", ["--max-det", "0"], "--max-det 0: must be >= 1"),
    ("detect", ["--classes", "0", "-1"], "--classes 0 -1: each value must be >= 0"),
    ("detect", ["--vid-stride", "0"], "--vid-stride 0: must be >= 1"),
    ("detect", ["--line-thickness", "0"], "--line-thickness 0: must be >= 1"),
    ("export", ["--batch", "0"], "--batch 0: must be >= 1"),
    ("export", ["--imgsz", "-1"], "--imgsz -1: sizes must be >= 1 pixel"),
]


@pytest.mark.parametrize(
    ("script", "argv", "message"), BAD_VALUES, ids=[" ".join(c[1]) + f" ({c[0]})" for c in BAD_VALUES]
)
def test_values_out_of_limits_are_one_error_line(
    script: str, argv: list[str], message: str, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)  # nothing may be created, in the working directory or the project
    project = ["--project", str(tmp_path / "runs")] if script != "export" else []
    with pytest.raises(SystemExit) as stopped:
        SCRIPTS[script][0].main([*argv, *project])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.splitlines() == [f"error: {message}"]
    assert list(tmp_path.iterdir()) == []


def test_limits_hold_for_the_python_api_too() -> None:
    with pytest.raises(OptionError, match="--epochs 0: must be >= 1") as error:
        TrainOptions(epochs=0)
    assert isinstance(error.value, UserError) and isinstance(error.value, ValueError)
    with pytest.raises(OptionError, match="--imgsz 0: must be >= 1"):
        ValOptions(imgsz=0)  # ran silently at 64 before: 0 read as "the default"
    assert TrainOptions(freeze="10").freeze == "10" and TrainOptions(freeze="backbone").freeze == "backbone"
    assert TrainOptions.from_dict(TrainOptions(epochs=3).to_dict()).epochs == 3
