"""The detect run behind `detect.py`: every frame of a source through a Predictor, with annotated images and
videos, label files and crops written to `runs/detect/expN/`, and a log line per frame."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from engine.backends import Backend
from engine.formats import load_backend
from engine.predict import Detections, Predictor, Timings
from engine.predict_options import PREDICT_DEFAULTS as D
from engine.predict_options import SAMPLE_IMAGES as SAMPLE_IMAGES  # where tests and users look for it
from engine.predict_options import PredictOptions
from engine.sources import Frame, Source
from engine.weights import resolve_weights
from utils.annotate import draw_detections
from utils.files import claim_run_dir, increment_path, path_inside, safe_name
from utils.logging import LOGGER


@dataclass
class DetectRun:
    """What a run produced: per-frame detections, skipped inputs, where the outputs went, mean timings (ms)."""

    save_dir: Path
    results: list[Detections] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    saved: list[Path] = field(default_factory=list)
    speed: Timings = field(default_factory=Timings)


class _VideoWriters:
    """One cv2.VideoWriter per video or stream, opened on its first frame, released when the next one starts."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self.writer: cv2.VideoWriter | None = None

    def write(self, path: Path, image: np.ndarray, fps: float) -> bool:
        """Append a frame to `path`; True when this call opened a new file."""
        opened = False
        if path != self.path:
            self.release()
            h, w = image.shape[:2]
            self.writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
            self.path, opened = path, True
        self.writer.write(image)
        return opened

    def release(self) -> None:
        if self.writer is not None:
            self.writer.release()
        self.path, self.writer = None, None


def _output_name(frame: Frame) -> str:
    """File name of the annotated output: the image's own name, a video's stem + .mp4, stream<i>.mp4, array<i>.jpg."""
    if frame.kind == "array":
        return f"{frame.path}.jpg"
    if frame.kind == "stream":
        return f"stream{frame.item}.mp4" if not frame.path.isdigit() else f"webcam{frame.path}.mp4"
    if frame.kind == "video":
        return f"{Path(frame.path).stem}.mp4"
    return Path(frame.path).name


def save_crops(
    image: np.ndarray, result: Detections, crop_dir: Path, stem: str, gain: float = 1.02, pad: int = 10
) -> None:
    """Each detection's box, enlarged by `gain` and `pad` pixels, as crops/<class name>/<stem>.jpg (numbered).

    Class names come from the model file and `stem` from the source's file name: both are made safe names, so
    a name like `../../x` or `/tmp/x` cannot write outside `crop_dir`."""
    h, w = image.shape[:2]
    for box, cls in zip(result.boxes, result.classes):
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        half_w, half_h = ((box[2] - box[0]) * gain + pad) / 2, ((box[3] - box[1]) * gain + pad) / 2
        x1, y1 = int(max(cx - half_w, 0)), int(max(cy - half_h, 0))
        x2, y2 = int(min(cx + half_w, w)), int(min(cy + half_h, h))
        if x2 <= x1 or y2 <= y1:
            continue
        crop_dir.mkdir(exist_ok=True)
        folder = path_inside(crop_dir, result.names.get(int(cls), str(int(cls))))
        folder.mkdir(exist_ok=True)
        cv2.imwrite(str(increment_path(folder / f"{safe_name(stem)}.jpg")), image[y1:y2, x1:x2])


@dataclass
class FramePrediction:
    """One frame's detections as the detect run produced them, with the frame and the stage timings."""

    frame: Frame
    result: Detections
    timings: Timings
    input_shape: tuple[int, ...]  # (h, w) the network saw


class DetectStream:
    """detect()'s work one frame at a time: iterating it yields a FramePrediction per frame and saves what the
    options ask for as it goes, so a long video never holds more than one frame. `run` fills in as it goes
    (save_dir, failures, saved files; mean `speed` at the end); it keeps no per-frame results itself.

    `backend` runs instead of loading `options.weights` (the Python API's model in memory).
    """

    def __init__(self, options: PredictOptions, backend: Backend | None = None) -> None:
        self.options = options
        self.backend = backend
        self.predictor: Predictor | None = None
        self.run: DetectRun | None = None

    def __iter__(self) -> Iterator[FramePrediction]:
        o = self.options
        target_dir = (Path(o.project) if o.project else Path(o.runs_dir) / "detect") / o.name
        # claimed before anything is loaded (an exclusive create: runs started together get exp and exp2), and
        # removed again if the run fails before writing into it; nothing is created when nothing is saved
        claimed = claim_run_dir(target_dir, o.exist_ok) if not o.nosave or o.save_txt or o.save_crop else None
        save_dir = claimed.path if claimed else increment_path(target_dir, o.exist_ok)
        with claimed or nullcontext():
            weights = resolve_weights(o.weights, o.runs_dir) if self.backend is None else None
            frames = Source(o.source, o.vid_stride)  # before loading the model: a bad source fails fast
            backend = self.backend if self.backend is not None else load_backend(weights, o.device, o.half)
            predictor = Predictor(backend, o.imgsz, o.conf_thres, o.iou_thres, o.classes, o.agnostic_nms, o.max_det)
            self.predictor, self.run = predictor, DetectRun(save_dir)
            run = self.run
            if o.save_txt:
                (save_dir / "labels").mkdir(exist_ok=True)
            size = f"{predictor.imgsz[0]}x{predictor.imgsz[1]}"
            LOGGER.info(f"{backend.format} model {backend.path or '(in memory)'} on {backend.device}, input {size}")

            videos = _VideoWriters()
            count = 0
            try:
                for frame in frames:
                    (result,), timings = predictor.predict([frame.image], [frame.path])
                    count += 1
                    run.speed.preprocess += timings.preprocess
                    run.speed.inference += timings.inference
                    run.speed.nms += timings.nms
                    h, w = predictor.last_input_shape
                    LOGGER.info(f"{frame.describe()}: {h}x{w} {result.summary()}, {timings.describe()}")
                    self._save(frame, result, save_dir, videos)
                    yield FramePrediction(frame, result, timings, predictor.last_input_shape)
            finally:
                videos.release()

            run.failures = frames.failures
            count = max(count, 1)
            run.speed = Timings(run.speed.preprocess / count, run.speed.inference / count, run.speed.nms / count)
            self._report()

    def _report(self) -> None:
        """The closing lines: mean speed, skipped inputs, where the outputs went."""
        o, run, predictor = self.options, self.run, self.predictor
        LOGGER.info(
            f"Speed: {run.speed.preprocess:.1f}ms pre-process, {run.speed.inference:.1f}ms inference, "
            f"{run.speed.nms:.1f}ms NMS per image at input size {predictor.imgsz[0]}x{predictor.imgsz[1]}"
            + (" (letterboxed to the minimum rectangle)" if predictor.rect else "")
        )
        if run.failures:
            LOGGER.warning(f"{len(run.failures)} input(s) skipped: {', '.join(path for path, _ in run.failures)}")
        if not o.nosave or o.save_txt or o.save_crop:
            labels_dir = run.save_dir / "labels"
            labels = f", {len(list(labels_dir.glob('*.txt')))} label files in {labels_dir}" if o.save_txt else ""
            LOGGER.info(f"Results saved to {run.save_dir}{labels}")

    def _save(self, frame: Frame, result: Detections, save_dir: Path, videos: _VideoWriters) -> None:
        """The frame's label file, crops and annotated image or video frame, as the options ask."""
        o, run = self.options, self.run
        output_name = _output_name(frame)  # from the source's file name: made safe to join with save_dir
        stem = Path(output_name).stem + (f"_{frame.frame}" if frame.frame else "")
        if o.save_txt:
            lines = result.label_lines(o.save_conf)
            path_inside(save_dir / "labels", f"{stem}.txt").write_text("".join(f"{line}\n" for line in lines))
        if o.save_crop:
            save_crops(frame.image, result, save_dir / "crops", stem)
        if not o.nosave:
            annotated = draw_detections(
                frame.image.copy(),
                result.boxes,
                result.classes,
                result.scores,
                result.names,
                o.line_thickness,
                o.hide_labels,
                o.hide_conf,
            )
            target = path_inside(save_dir, output_name)
            if frame.kind in ("video", "stream"):
                if videos.write(target, annotated, frame.fps):
                    run.saved.append(target)
            else:
                cv2.imwrite(str(target), annotated)
                run.saved.append(target)


def detect(
    source: str | Path | int | np.ndarray | Sequence = D.source,
    weights: str | Path | None = D.weights,
    imgsz: int | Sequence[int] | None = D.imgsz,
    conf_thres: float = D.conf_thres,
    iou_thres: float = D.iou_thres,
    max_det: int = D.max_det,
    device: str = D.device,
    classes: list[int] | None = D.classes,
    agnostic_nms: bool = D.agnostic_nms,
    save_txt: bool = D.save_txt,
    save_conf: bool = D.save_conf,
    save_crop: bool = D.save_crop,
    nosave: bool = D.nosave,
    line_thickness: int | None = D.line_thickness,
    hide_labels: bool = D.hide_labels,
    hide_conf: bool = D.hide_conf,
    vid_stride: int = D.vid_stride,
    half: bool = D.half,
    project: str | Path | None = D.project,
    name: str = D.name,
    exist_ok: bool = D.exist_ok,
    runs_dir: str | Path = D.runs_dir,
) -> DetectRun:
    """Run detection on `source` and save what was asked; the parameters are PredictOptions' (detect.py --help).

    Without `weights` the newest `<runs_dir>/train/*/weights/best.pt` is used. Outputs go to
    `<project>/<name>` (default `<runs_dir>/detect/exp`, numbered exp2, exp3, ... unless `exist_ok`).
    Every frame's detections are kept in the returned run; `DetectStream` gives them one at a time instead.
    """
    options = PredictOptions(**locals())  # the first statement: locals() holds exactly the parameters
    stream = DetectStream(options)
    results = [prediction.result for prediction in stream]
    stream.run.results = results
    return stream.run
