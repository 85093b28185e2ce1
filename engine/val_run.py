"""val.py as a library call: load any weights format, build the split's loader, run the shared validation loop,
optionally write COCO JSON and score it with pycocotools."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dataio.data_config import DataConfig, DataConfigNotFoundError, load_data_config
from dataio.dataset import YoloDataset
from dataio.loader import build_dataloader
from engine.backends import Backend
from engine.formats import load_backend
from engine.predict_options import PREDICT_DEFAULTS
from engine.val_data import validation_dataset
from engine.val_options import PER_CLASS_MAX, TASKS, ValOptions
from engine.validator import ValidationResult, validate
from engine.weights import resolve_weights
from utils.coco import (
    detections_to_coco_results,
    evaluate_with_pycocotools,
    pycocotools_available,
    save_json,
    yolo_labels_to_coco,
)
from utils.errors import OptionError
from utils.files import claim_run_dir
from utils.logging import LOGGER

IN_MEMORY = "model"  # the name messages and the COCO JSON use for a model passed in memory
DEFAULT_DATA = "trees.yaml"  # for models that do not record their training data (built in memory, older exports)


def _validation_input(backend: Backend, requested: int, rect: bool, augment: bool) -> tuple[int, bool]:
    """(square image size, rectangular batches?): a fixed-size export takes its own square and nothing else."""
    if backend.dynamic or not backend.imgsz:
        return requested, rect
    height, width = backend.imgsz
    if height != width:
        raise OptionError(
            f"{backend.path} was exported at a fixed {height}x{width}; val.py letterboxes into a square: "
            f"re-export it with one --imgsz or with --dynamic"
        )
    if augment:
        raise OptionError(
            f"--augment runs the model at several sizes; {backend.path} takes only {height}x{width} "
            f"(use the .pt or an export made with --dynamic)"
        )
    if requested != height:
        LOGGER.warning(f"--imgsz {requested} ignored: {backend.path} was exported for {height}x{width}")
    if rect:
        LOGGER.warning(f"--rect ignored: {backend.path} takes only its {height}x{width} square")
    return height, False


def _validation_data(options: ValOptions, backend: Backend, weights: Path) -> tuple[DataConfig, bool]:
    """The data config to score on (--data, else the one the model was trained on) and whether classes merge
    (--single-cls, or a model trained so); a model whose classes are not the data's is refused."""
    trained = backend.metadata.data or {}
    single_cls = options.single_cls or bool(trained.get("single_cls"))
    if single_cls and not options.single_cls:
        LOGGER.info(f"{weights} was trained with --single-cls: validating with every class merged into one")
    if options.data:
        data = load_data_config(options.data)
    elif trained:
        LOGGER.info(f"Validating on {trained['name']}, the data {weights} was trained on (--data to change)")
        try:
            data = load_data_config(trained["name"])
        except DataConfigNotFoundError as e:
            raise DataConfigNotFoundError(f"{e} ({weights} was trained on it); pass --data") from None
    else:
        LOGGER.warning(f"{weights} does not record the data it was trained on; validating on {DEFAULT_DATA}")
        data = load_data_config(DEFAULT_DATA)
    if not single_cls:
        check_classes_match(weights, backend.names, data)
    return data, single_cls


def check_classes_match(weights: Path, model_names: dict[int, str], data: DataConfig) -> None:
    """An OptionError naming both sides when the model's classes are not the data's (count or names)."""
    where = data.file or "the data config"
    if len(model_names) != data.nc:
        raise OptionError(
            f"{weights} has {_classes(model_names)} but {where} has {_classes(data.names)}: "
            f"pass --data with the data the model was trained on, or --single-cls"
        )
    differing = [i for i in sorted(data.names) if model_names.get(i) != data.names[i]]
    if differing:
        i = differing[0]
        raise OptionError(
            f"{weights} and {where} name their classes differently ({len(differing)} of {data.nc}; class {i} is "
            f"{model_names.get(i)!r} in the model, {data.names[i]!r} in the data): pass --data with the data the "
            f"model was trained on"
        )


def _classes(names: dict[int, str], shown: int = 5) -> str:
    """'3 classes (a, b, c)', the first few names only for long lists."""
    listed = ", ".join(names[i] for i in sorted(names)[:shown]) + (", ..." if len(names) > shown else "")
    return f"{len(names)} {'class' if len(names) == 1 else 'classes'} ({listed})"


def run_val(options: ValOptions, backend: Backend | None = None) -> ValidationResult:
    """Validate weights on a data split; returns the metrics (and writes plots, txt and JSON as asked).

    `backend` is validated instead of loading `options.weights` (the Python API's model in memory). The run
    directory is claimed first (an exclusive create: two runs started together get exp and exp2) and removed
    again if the run fails before writing anything into it."""
    if options.task not in TASKS:
        raise OptionError(f"--task {options.task!r}: use one of {', '.join(TASKS)}")
    with claim_run_dir(Path(options.project) / options.name, options.exist_ok) as run_dir:
        return _validate_into(options, run_dir.path, backend)


def _validate_into(options: ValOptions, save_dir: Path, backend: Backend | None = None) -> ValidationResult:
    """run_val's work, with its outputs in `save_dir`."""
    if backend is None:
        weights = resolve_weights(options.weights, options.runs_dir)
        backend = load_backend(weights, options.device, options.half)
    else:
        weights = Path(backend.path or IN_MEMORY)  # how messages and file names refer to it
    data, single_cls = _validation_data(options, backend, weights)
    requested_imgsz = options.imgsz or max(backend.default_imgsz)
    if not options.imgsz:
        LOGGER.info(f"Validating at {requested_imgsz} px, the size {weights} was trained or exported at")
    split = data.split("test" if options.task == "test" else "val")
    names = {0: "item"} if single_cls else backend.names
    imgsz, rect = _validation_input(backend, int(requested_imgsz), options.rect, options.augment)
    stride = int(backend.stride)
    if imgsz % stride:
        raise OptionError(f"--imgsz {imgsz} must be a multiple of the model stride {stride}")
    batch = options.batch_size if backend.dynamic or backend.metadata.batch in (None, 0) else backend.metadata.batch
    dataset = validation_dataset(
        split,
        imgsz,
        stride,
        batch,
        rect=rect,
        single_cls=single_cls,
        nc=data.nc,  # labels are checked against the data's classes; --single-cls merges them after
        prefix=f"{options.task}: ",
    )
    loader = build_dataloader(dataset, batch, workers=options.workers, shuffle=False)
    speed_only = options.task == "speed"
    collected: list[tuple[str, torch.Tensor]] = []
    sink = (lambda path, det, hw: collected.append((path, det))) if options.save_json and not speed_only else None
    iou = options.iou_thres if options.iou_thres is not None else backend.metadata.val_iou
    result = validate(
        backend,  # every format through its backend: one output layout (objectness column for anchor heads)
        loader,
        names=names,
        device=backend.device,
        conf_thres=PREDICT_DEFAULTS.conf_thres if speed_only else options.conf_thres,  # speed: as detect.py runs
        iou_thres=PREDICT_DEFAULTS.iou_thres if speed_only else iou,
        max_det=options.max_det,
        half=options.half,
        augment=options.augment,
        single_cls=single_cls,
        plots=options.plots and not speed_only,
        save_dir=save_dir,
        verbose=options.verbose if options.verbose is not None else len(names) <= PER_CLASS_MAX,
        save_txt=options.save_txt,
        save_conf=options.save_conf,
        predictions_sink=sink,
    )
    if sink is not None:
        result.coco = _coco_evaluation(dataset, collected, names, save_dir, weights)
    LOGGER.info(f"Results saved to {save_dir}")
    return result


def _coco_evaluation(
    dataset: YoloDataset,
    collected: list[tuple[str, torch.Tensor]],
    names: dict[int, str],
    save_dir: Path,
    weights: Path,
) -> dict[str, Any] | None:
    """Write COCO annotations (converted from the YOLO labels) and results; score them with pycocotools."""
    ids = {path: i for i, path in enumerate(dataset.image_files)}  # integer ids: file stems may mix types
    scored = {path for path, _ in collected}  # an image that failed to decode mid-run is left out of both sides
    annotations = yolo_labels_to_coco(
        [
            (ids[p], int(w), int(h), labels)
            for p, (w, h), labels in zip(dataset.image_files, dataset.shapes, dataset.labels)
            if p in scored
        ],
        names,
    )
    results = [r for path, det in collected for r in detections_to_coco_results(ids[path], det)]
    annotations_path = save_json(annotations, save_dir / "annotations.json")
    results_path = save_json(results, save_dir / f"{Path(weights).stem}_predictions.json")
    LOGGER.info(f"COCO annotations {annotations_path}, predictions {results_path}")
    if not pycocotools_available():
        LOGGER.warning("pycocotools is not installed: COCO JSON written, not scored (pip install pycocotools)")
        return None
    evaluation = evaluate_with_pycocotools(annotations, results)
    LOGGER.info(f"pycocotools:\n{evaluation['summary']}")
    return evaluation
