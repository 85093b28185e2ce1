"""Bad configs fail at build time with the file and the layer in the message, and nothing in them runs."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from models.config import (
    ConfigError,
    available_configs,
    find_config_file,
    load_model_config,
    read_yaml,
    scaled_config_name,
)
from models.detection_model import DetectionModel
from tests.helpers import write_config

BASE = read_yaml(find_config_file("yolov5s.yaml")[0])


def variant(**changes) -> dict:
    config = copy.deepcopy(BASE)
    config.update(changes)
    return config


def with_row(section: str, index: int, row: list) -> dict:
    config = copy.deepcopy(BASE)
    config[section][index] = row
    return config


CASES = {
    "unknown module": (with_row("backbone", 2, [-1, 3, "C3x9", [128]]), r"layer 2 .*unknown module 'C3x9'"),
    "close match": (with_row("backbone", 9, [-1, 1, "SPFF", [1024, 5]]), r"layer 9 .*did you mean.*SPPF"),
    "from forward": (with_row("head", 2, [[-1, 16], 1, "Concat", [1]]), r"layer 12 .*points forward"),
    "from out of range": (with_row("head", 2, [[-1, -40], 1, "Concat", [1]]), r"layer 12 .*out of range"),
    "wrong arg count": (with_row("backbone", 0, [-1, 1, "Conv", [64, 6, 2, 2, 1, 1, True, 9, 9]]), r"layer 0 .*Conv\("),
    "concat strides": (with_row("head", 2, [[-1, 4], 1, "Concat", [1]]), r"layer 12 .*different strides \(16, 8\)"),
    "missing anchors": ({k: v for k, v in BASE.items() if k != "anchors"}, r"layer 24 .*defines no 'anchors'"),
    "missing scales": ({k: v for k, v in BASE.items() if k != "scales"}, r"missing 'scales'"),
    "malformed row": (with_row("backbone", 1, [-1, 1, "Conv"]), r"layer 1 .*\[from, number, module, args\]"),
    "bad repeats": (with_row("backbone", 1, [-1, 0, "Conv", [128, 3, 2]]), r"layer 1 .*positive int"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_config_names_file_and_layer(tmp_path: Path, name: str) -> None:
    config, pattern = CASES[name]
    path = write_config(tmp_path, "bad_model.yaml", config)
    with pytest.raises(ConfigError, match=pattern) as error:
        DetectionModel(str(path), scale="s" if "scales" in config else None)
    assert str(path) in str(error.value)


def test_missing_nc(tmp_path: Path) -> None:
    path = write_config(tmp_path, "no_nc.yaml", {k: v for k, v in BASE.items() if k != "nc"})
    with pytest.raises(ConfigError, match=r"no_nc.yaml.*nc"):
        DetectionModel(str(path), scale="s")


def test_unknown_scale_letter(tmp_path: Path) -> None:
    path = write_config(tmp_path, "scaled.yaml", BASE)
    with pytest.raises(ConfigError, match=r"scaled.yaml: unknown scale 'q'; available scales: n, s, m, l, x"):
        load_model_config(str(path), scale="q")


def test_unknown_config_name_lists_close_matches() -> None:
    with pytest.raises(ConfigError, match="Did you mean.*yolov5.yaml"):
        find_config_file("yolov6.yaml")


def test_code_in_module_name_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = f"__import__('os').system('touch {marker}')"
    for row in ([-1, 1, payload, [64, 3]], [-1, 1, "Conv", [payload, 3]]):
        path = write_config(tmp_path, "evil.yaml", with_row("backbone", 0, row))
        with pytest.raises(ConfigError, match="evil.yaml: layer 0"):
            DetectionModel(str(path), scale="s")
    assert not marker.exists()


def test_scale_letter_and_paths_resolve() -> None:
    path, scale = find_config_file("yolo11n.yaml")
    assert path.name == "yolo11.yaml" and scale == "n"
    assert find_config_file(str(path))[0] == path
    assert load_model_config("yolov5m.yaml").scaling.width == 0.75


def test_every_scaled_config_name_resolves_back_to_its_file() -> None:
    scaled = [path for path in available_configs() if read_yaml(path).get("scales")]
    assert scaled
    for path in scaled:
        for scale in read_yaml(path)["scales"]:
            assert find_config_file(scaled_config_name(path, scale)) == (path, scale)
