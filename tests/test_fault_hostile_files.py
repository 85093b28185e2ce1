"""Issue 14: hostile checkpoints and YAML files through every entry point that loads them.

A checkpoint whose pickle calls `os.system`, a TorchScript file that is such a pickle, and YAML files with
python tags (`!!python/object/apply:os.system`) are handed to train.py (--weights, --resume, --backbone-weights,
--cfg, --data, --hyp), val.py (--weights, --data), detect.py and export.py (--weights) and models/yolo.py
(--cfg). Each must: run nothing (the marker file the payload would create never appears), stop with exit
status 2 and one `error:` line naming the file, and write nothing outside the run directory. Class names that
are paths (`../../x`, absolute paths) in a data YAML must not make train.py or val.py write outside their run
directories either (detect.py --save-crop with such names in a checkpoint: tests/test_fault_hostile_names.py).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml

import detect as detect_script
import export as export_script
import train as train_script
import val as val_script
from models import yolo as yolo_script
from tests.engine_helpers import make_checkpoint
from tests.helpers import PAYLOAD_MARKER, STILL_HYP, SystemPayload
from tests.synthetic_data import make_synthetic_dataset


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of hostile files (and tiny good data and weights, so that only the hostile file can fail)."""
    root = tmp_path_factory.mktemp("hostile")
    marker = root / PAYLOAD_MARKER
    # The payloads are live: loaded unsafely, they do create their marker (here a throw-away one).
    probe = root / "probe_marker"
    pickle.loads(pickle.dumps(SystemPayload(probe)))
    yaml.unsafe_load(f"x: !!python/object/apply:os.system ['touch {probe}.yaml']")
    assert probe.exists() and Path(f"{probe}.yaml").exists()
    probe.unlink()
    Path(f"{probe}.yaml").unlink()
    payload = SystemPayload(marker)
    torch.save({"format": 1, "model": payload, "names": {0: "a"}, "epoch": 0}, root / "evil.pt")
    (root / "evil_plain_pickle.pt").write_bytes(pickle.dumps({"model": payload}))
    torch.save({"model": payload}, root / "evil_legacy.pt", _use_new_zipfile_serialization=False)
    torch.save({"model": payload}, root / "evil.torchscript")
    torch.save({"state_dict": payload}, root / "evil_backbone.pth")
    tag = f"!!python/object/apply:os.system ['touch {marker}']"
    (root / "evil_cfg.yaml").write_text(f"nc: 2\ndepth_multiple: {tag}\nbackbone: []\nhead: []\n")
    new_tag = f"!!python/object/new:os.system ['touch {marker}']"
    (root / "evil_cfg_new.yaml").write_text(f"nc: 2\nbackbone:\n  - [-1, 1, Conv, {new_tag}]\nhead: []\n")
    data = make_synthetic_dataset(root / "data", n_train=2, n_val=2, imgsz=64, nc=2)
    good = yaml.safe_load(data.read_text())
    (root / "evil_data.yaml").write_text(f"path: {good['path']}\ntrain: images/train\nval: images/val\nnames: {tag}\n")
    (root / "evil_hyp.yaml").write_text(yaml.safe_dump(STILL_HYP).replace("lr0: 0.01", f"lr0: {tag}"))
    assert f"lr0: {tag}" in (root / "evil_hyp.yaml").read_text()
    make_checkpoint(root / "good.pt", cfg="yolov5n.yaml", nc=2)
    return root


def _train(*argv: str) -> tuple[Callable[[list[str]], int], list[str]]:
    return train_script.main, [*argv, "--epochs", "1", "--imgsz", "64", "--batch-size", "2", "--project", "runs"]


# (entry point, arguments; {h} is the hostile folder, {data} the good data YAML), the hostile file named in the error
CASES = {
    "train --weights (torch zip)": (_train("--weights", "{h}/evil.pt", "--data", "{data}"), "evil.pt"),
    "train --weights (plain pickle)": (_train("--weights", "{h}/evil_plain_pickle.pt", "--data", "{data}"), "evil_"),
    "train --resume": (_train("--resume", "{h}/evil.pt"), "evil.pt"),
    "train --backbone-weights": (
        _train("--cfg", "yolo11n_mobilenetv4.yaml", "--backbone-weights", "{h}/evil_backbone.pth", "--data", "{data}"),
        "evil_backbone.pth",
    ),
    "train --cfg": (_train("--cfg", "{h}/evil_cfg.yaml", "--data", "{data}"), "evil_cfg.yaml"),
    "train --data": (_train("--data", "{h}/evil_data.yaml"), "evil_data.yaml"),
    "train --hyp": (_train("--cfg", "yolov5n.yaml", "--hyp", "{h}/evil_hyp.yaml", "--data", "{data}"), "evil_hyp.yaml"),
    "val --weights": (
        (val_script.main, ["--weights", "{h}/evil.pt", "--data", "{data}", "--project", "runs"]),
        "evil.pt",
    ),
    "val --weights (torchscript)": (
        (val_script.main, ["--weights", "{h}/evil.torchscript", "--data", "{data}", "--project", "runs"]),
        "evil.torchscript",
    ),
    "val --data": (
        (val_script.main, ["--weights", "{h}/good.pt", "--data", "{h}/evil_data.yaml", "--project", "runs"]),
        "evil_data.yaml",
    ),
    "detect --weights": (
        (detect_script.main, ["--weights", "{h}/evil.pt", "--source", "{images}", "--project", "runs"]),
        "evil.pt",
    ),
    "detect --weights (torchscript)": (
        (detect_script.main, ["--weights", "{h}/evil.torchscript", "--source", "{images}", "--project", "runs"]),
        "evil.torchscript",
    ),
    "export --weights": ((export_script.main, ["--weights", "{h}/evil.pt", "--include", "onnx"]), "evil.pt"),
    "models/yolo.py --cfg": ((yolo_script.main, ["--cfg", "{h}/evil_cfg.yaml"]), "evil_cfg.yaml"),
    "models/yolo.py --cfg (object/new in a row)": (
        (yolo_script.main, ["--cfg", "{h}/evil_cfg_new.yaml"]),
        "evil_cfg_new.yaml",
    ),
    "val --weights (legacy torch format)": (
        (val_script.main, ["--weights", "{h}/evil_legacy.pt", "--data", "{data}", "--project", "runs"]),
        "evil_legacy.pt",
    ),
}


def _files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_hostile_file_runs_nothing_and_fails_in_one_line(
    case: str, hostile: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    (main, argv), named = CASES[case]
    values = {"h": hostile, "data": hostile / "data" / "data.yaml", "images": hostile / "data" / "images" / "val"}
    argv = [arg.format(**values) for arg in argv]
    monkeypatch.chdir(tmp_path)  # default run folders (runs/...) land here
    before = _files_under(hostile)
    capsys.readouterr()

    status = main(argv)

    err = capsys.readouterr().err
    assert not (hostile / PAYLOAD_MARKER).exists(), "the payload ran"
    lines = [line for line in err.splitlines() if line.strip()]
    assert status == 2 and len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], err
    assert "Traceback" not in err
    created = {p for p in _files_under(hostile) - before if "cache" not in p.name}  # label caches: the data's own
    assert not created, created
    outside_runs = [p for p in _files_under(tmp_path) if "runs" not in p.relative_to(tmp_path).parts]
    assert not outside_runs, outside_runs


TRAVERSAL_NAMES = ["../../../escaped_rel", "{outside}/escaped_abs", "..", "a/../../../escaped_mixed"]


@pytest.fixture
def traversal_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(work folder with data/data.yaml whose class names are paths, a folder outside it that one names)."""
    work = tmp_path_factory.mktemp("traversal")
    outside = tmp_path_factory.mktemp("outside")
    names = {i: name.format(outside=outside) for i, name in enumerate(TRAVERSAL_NAMES)}
    data = make_synthetic_dataset(work / "data", n_train=2, n_val=2, imgsz=64, nc=len(names))
    config = yaml.safe_load(data.read_text())
    config["names"] = names
    data.write_text(yaml.safe_dump(config))
    return work, outside


def _assert_written_only_under(work: Path, before: set[Path], run_dirs: list[Path], outside: Path) -> None:
    created = _files_under(work) - before
    stray = [p for p in created if not any(p.is_relative_to(run) for run in run_dirs) and "cache" not in p.name]
    assert not stray, sorted(map(str, stray))[:10]
    assert not any(outside.iterdir()), list(outside.iterdir())


def test_class_names_that_are_paths_in_train_and_val(
    traversal_data: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Names from the data YAML: train.py (with plots) and val.py (--save-txt --save-json --plots) write every
    file under their run directory (label caches beside the labels are the data's own)."""
    work, outside = traversal_data
    data = work / "data" / "data.yaml"
    hyp = work / "still.yaml"
    hyp.write_text(yaml.safe_dump(STILL_HYP))
    before = _files_under(work)
    monkeypatch.chdir(work / "data")  # relative names resolve from here too
    train_argv = ["--cfg", "yolov5n.yaml", "--data", str(data), "--hyp", str(hyp), "--epochs", "1"]
    train_argv += ["--imgsz", "64", "--batch-size", "2", "--workers", "0", "--project", str(work / "runs" / "t")]
    assert train_script.main(train_argv) == 0
    val_argv = ["--weights", str(work / "runs" / "t" / "exp" / "weights" / "best.pt"), "--data", str(data)]
    val_argv += ["--imgsz", "64", "--workers", "0", "--save-txt", "--save-json", "--plots"]
    assert val_script.main([*val_argv, "--project", str(work / "runs" / "v")]) == 0
    assert (work / "runs" / "v" / "exp" / "confusion_matrix.png").is_file()  # the names were drawn
    _assert_written_only_under(work, before, [work / "runs" / "t" / "exp", work / "runs" / "v" / "exp"], outside)
