"""Prediction results in the shape ultralytics users know: `Results` per image with `boxes` (`xyxy`, `xywhn`,
`conf`, `cls` as torch tensors), `names`, `orig_img`, `path`, `speed`, and `plot()`, `save()`, `save_txt()`,
`to_json()` / `Results.from_json()`.

They wrap the engine's per-image `Detections` (engine/predict.py): label lines come from its `label_lines` and
drawing from utils/annotate.py, the same code detect.py writes its files with.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from engine.predict import Detections, Timings
from utils.annotate import draw_detections
from utils.boxes import xyxy_to_xywh
from utils.errors import UserError

JSON_FORMAT = "yolo-results/1"


class ResultsError(UserError, ValueError):
    """Results that cannot do what was asked (JSON of another format, plotting without the image)."""


class Boxes:
    """The detections of one image: `data` is (n, 6) `x1, y1, x2, y2, conf, cls` in original image pixels."""

    def __init__(self, data: torch.Tensor | np.ndarray, orig_shape: tuple[int, int]) -> None:
        self.data = data
        self.orig_shape = tuple(int(v) for v in orig_shape)  # (h, w)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: Any) -> Boxes:
        data = self.data[index]
        return Boxes(data.reshape(-1, 6) if data.ndim == 1 else data, self.orig_shape)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def xyxy(self) -> torch.Tensor | np.ndarray:
        """Corners in original image pixels."""
        return self.data[:, :4]

    @property
    def conf(self) -> torch.Tensor | np.ndarray:
        return self.data[:, 4]

    @property
    def cls(self) -> torch.Tensor | np.ndarray:
        """Class indices (float, as ultralytics gives them)."""
        return self.data[:, 5]

    @property
    def xywh(self) -> torch.Tensor | np.ndarray:
        """Centre x, centre y, width, height in original image pixels."""
        return xyxy_to_xywh(self.xyxy)

    @property
    def xyxyn(self) -> torch.Tensor | np.ndarray:
        """Corners normalised by the image's width and height."""
        return self.xyxy / self._size_divisor()

    @property
    def xywhn(self) -> torch.Tensor | np.ndarray:
        """Centre-size boxes normalised by the image's width and height (the YOLO label format)."""
        return self.xywh / self._size_divisor()

    def _size_divisor(self) -> torch.Tensor | np.ndarray:
        h, w = self.orig_shape
        if isinstance(self.data, torch.Tensor):
            return torch.tensor([w, h, w, h], dtype=self.data.dtype, device=self.data.device)
        return np.array([w, h, w, h], dtype=self.data.dtype)

    def cpu(self) -> Boxes:
        return Boxes(self.data.cpu(), self.orig_shape) if isinstance(self.data, torch.Tensor) else self

    def numpy(self) -> Boxes:
        """The same boxes with numpy arrays."""
        data = self.data.cpu().numpy() if isinstance(self.data, torch.Tensor) else self.data
        return Boxes(data, self.orig_shape)

    def __repr__(self) -> str:
        return f"Boxes({len(self)} boxes, orig_shape={self.orig_shape})"


class Results:
    """Detections of one image (one video frame) with the image they were found in.

    `speed` holds the milliseconds of `preprocess`, `inference` and `postprocess` (NMS) for this image.
    """

    def __init__(
        self,
        orig_img: np.ndarray | None,
        path: str,
        names: dict[int, str],
        boxes: Boxes,
        speed: dict[str, float] | None = None,
    ) -> None:
        self.orig_img = orig_img  # HxWx3 BGR uint8 (None for results read back from JSON)
        self.path = path
        self.names = dict(names)
        self.boxes = boxes
        self.speed = dict(speed or {})

    @classmethod
    def from_detections(
        cls, detections: Detections, orig_img: np.ndarray | None = None, timings: Timings | None = None
    ) -> Results:
        """Results of the engine's Detections (and the image and timings they came with)."""
        data = np.concatenate(
            (
                detections.boxes.reshape(-1, 4),
                detections.scores.reshape(-1, 1),
                detections.classes.reshape(-1, 1).astype(np.float32),
            ),
            axis=1,
        ).astype(np.float32)
        speed = None
        if timings is not None:
            speed = {"preprocess": timings.preprocess, "inference": timings.inference, "postprocess": timings.nms}
        return cls(orig_img, detections.path, detections.names, Boxes(torch.from_numpy(data), detections.shape), speed)

    @property
    def orig_shape(self) -> tuple[int, int]:
        return self.boxes.orig_shape

    def __len__(self) -> int:
        return len(self.boxes)

    def detections(self) -> Detections:
        """The engine's Detections of these results (numpy boxes, scores, classes)."""
        data = self.boxes.numpy().data
        return Detections(
            self.path,
            self.orig_shape,
            data[:, :4].astype(np.float32),
            data[:, 4].astype(np.float32),
            data[:, 5].astype(np.int64),
            self.names,
        )

    def verbose(self) -> str:
        """'2 person, 1 bus' or '(no detections)'."""
        return self.detections().summary()

    def plot(
        self,
        conf: bool = True,
        labels: bool = True,
        line_width: int | None = None,
        img: np.ndarray | None = None,
    ) -> np.ndarray:
        """A copy of the image (or of `img`) with the boxes drawn as detect.py draws them; BGR HxWx3 uint8."""
        base = img if img is not None else self.orig_img
        if base is None:
            raise ResultsError(f"{self.path}: these results hold no image to draw on (read from JSON?); pass img=")
        d = self.detections()
        return draw_detections(base.copy(), d.boxes, d.classes, d.scores, self.names, line_width, not labels, not conf)

    def save(self, filename: str | Path | None = None, **plot_options: Any) -> str:
        """Write `plot()` to `filename` (default `results_<image name>`); returns the file name."""
        target = Path(filename) if filename is not None else Path(f"results_{Path(self.path).stem}.jpg")
        if not cv2.imwrite(str(target), self.plot(**plot_options)):
            raise ResultsError(f"cannot write {target} (its folder missing, or an unknown image suffix)")
        return str(target)

    def save_txt(self, txt_file: str | Path, save_conf: bool = False) -> str:
        """Append the detections to `txt_file` as YOLO label lines (`cls xc yc w h [conf]`, normalised), as
        ultralytics does (appending, so the frames of a video can share one file); returns the file name."""
        lines = self.detections().label_lines(save_conf)
        with open(txt_file, "a", encoding="utf-8") as f:
            f.writelines(f"{line}\n" for line in lines)
        return str(txt_file)

    def summary(self, normalize: bool = False) -> list[dict[str, Any]]:
        """One dict per detection: `name`, `class`, `confidence`, `box` {x1, y1, x2, y2} (ultralytics' keys),
        in pixels or, with `normalize`, as fractions of the image's width and height."""
        data = self.boxes.numpy().data
        boxes = self.boxes.numpy().xyxyn if normalize else data[:, :4]
        return [
            {
                "name": self.names.get(int(cls), str(int(cls))),
                "class": int(cls),
                "confidence": float(score),
                "box": dict(zip(("x1", "y1", "x2", "y2"), (float(v) for v in box))),
            }
            for box, score, cls in zip(boxes, data[:, 4], data[:, 5])
        ]

    def to_json(self, indent: int | None = None) -> str:
        """JSON of everything but the image: path, shape, names, speed and the `summary()` of the detections.

        Values are written in full (float32 survives the trip exactly), so `Results.from_json` gives back equal
        boxes, scores and classes."""
        return json.dumps(
            {
                "format": JSON_FORMAT,
                "path": self.path,
                "shape": list(self.orig_shape),
                "names": {str(k): v for k, v in self.names.items()},
                "speed": self.speed,
                "detections": self.summary(),
            },
            indent=indent,
        )

    @classmethod
    def from_json(cls, text: str, orig_img: np.ndarray | None = None) -> Results:
        """Results read back from `to_json()` (the image is not in the JSON: pass it as `orig_img` to plot)."""
        try:
            values = json.loads(text)
            if values.get("format") != JSON_FORMAT:
                raise ValueError(f"not {JSON_FORMAT} JSON")
            rows = [
                [d["box"]["x1"], d["box"]["y1"], d["box"]["x2"], d["box"]["y2"], d["confidence"], d["class"]]
                for d in values["detections"]
            ]
            data = torch.tensor(rows, dtype=torch.float32).reshape(-1, 6)
            names = {int(k): str(v) for k, v in values["names"].items()}
            shape = (int(values["shape"][0]), int(values["shape"][1]))
            return cls(orig_img, str(values["path"]), names, Boxes(data, shape), values.get("speed"))
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as e:
            raise ResultsError(
                f"Results.from_json: not the JSON of Results.to_json ({type(e).__name__}: {e})"
            ) from None

    def __repr__(self) -> str:
        return f"Results({self.path}: {self.verbose()}, shape={self.orig_shape})"
