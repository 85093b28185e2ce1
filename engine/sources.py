"""Where frames come from: an image, a folder, a glob, a video, a webcam index, a .txt list, a stream URL,
or in-memory arrays (the Python API). Every source yields BGR frames one at a time.

A file that cannot be read is logged, recorded in `Source.failures`, and skipped; the rest goes on.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from dataio.image_io import ImageReadError, read_image
from dataio.sources import is_glob
from utils.errors import UserError
from utils.logging import LOGGER

IMAGE_SUFFIXES = {".bmp", ".dng", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp", ".pfm"}
VIDEO_SUFFIXES = {".asf", ".avi", ".gif", ".m4v", ".mkv", ".mov", ".mp4", ".mpeg", ".mpg", ".ts", ".wmv", ".webm"}
STREAM_PREFIXES = ("rtsp://", "rtmp://", "http://", "https://", "tcp://", "udp://")


class SourceError(UserError, ValueError):
    """A source that cannot be opened at all (missing path, nothing usable in it, unopenable stream)."""


@dataclass
class Frame:
    """One image to run on, with where it came from."""

    path: str  # file, stream URL, webcam index, or "array<i>"
    image: np.ndarray  # HWC BGR uint8
    kind: str  # "image", "video", "stream" or "array"
    item: int  # 1-based position among the source's items (files / streams)
    items: int  # number of items
    frame: int = 0  # 1-based frame number within a video or stream; 0 for still images
    frames: int = 0  # frames in the video (0 if unknown or live)
    fps: float = 30.0

    def describe(self) -> str:
        """'image 1/3 a.jpg' or 'video 1/1 (frame 4/30) clip.mp4' for the per-frame log line."""
        if self.kind in ("video", "stream"):
            total = f"/{self.frames}" if self.frames else ""
            return f"{self.kind} {self.item}/{self.items} (frame {self.frame}{total}) {self.path}"
        return f"{self.kind} {self.item}/{self.items} {self.path}"


def is_stream(source: str) -> bool:
    """True for a webcam index ('0') or a stream URL (rtsp://, http://, ...)."""
    return source.isdigit() or source.lower().startswith(STREAM_PREFIXES)


class Source:
    """Iterate frames from a source spec (see module docstring). `vid_stride` keeps every n-th video frame."""

    def __init__(self, source: str | Path | int | np.ndarray | Sequence, vid_stride: int = 1) -> None:
        if vid_stride < 1:
            raise SourceError(f"--vid-stride must be >= 1, got {vid_stride}")
        self.vid_stride = vid_stride
        self.failures: list[tuple[str, str]] = []
        self.arrays: list[np.ndarray] = []
        self.items: list[str] = []
        self.stream = False
        self._resolve(source)

    def _resolve(self, source: str | Path | int | np.ndarray | Sequence) -> None:
        if isinstance(source, np.ndarray) or _is_pil(source):
            self.arrays = [_as_bgr(source, 0)]
            return
        if isinstance(source, (list, tuple)):
            if all(isinstance(s, np.ndarray) or _is_pil(s) for s in source):
                self.arrays = [_as_bgr(s, i) for i, s in enumerate(source)]
                return
            for s in source:
                if isinstance(s, np.ndarray) or _is_pil(s):
                    raise SourceError("a source list holds either paths or images (arrays), not both")
                try:
                    self.items += self._expand(str(s), explicit=True)
                except SourceError as e:  # one bad entry does not stop the others
                    self._fail(str(s), str(e))
        else:
            text = str(source).strip()
            if is_stream(text):
                self.items, self.stream = [text], True
            else:
                self.items = self._expand(text, explicit=True)
        if not self.items:
            supported = " ".join(sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES))
            raise SourceError(f"no images or videos found in {source}; supported suffixes: {supported}")

    def _expand(self, text: str, explicit: bool) -> list[str]:
        """Paths a spec stands for: a folder's media files, a glob's matches, a .txt list's lines, or itself."""
        path = Path(text).expanduser()
        if is_glob(text):
            return [p for p in sorted(glob.glob(text, recursive=True)) if _is_media(p)]
        if path.is_dir():
            return [str(p) for p in sorted(path.iterdir()) if p.is_file() and _is_media(str(p))]
        if path.suffix.lower() == ".txt" and path.is_file():
            return self._read_list(path)
        if path.is_file():
            if explicit and not _is_media(text):
                supported = " ".join(sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES))
                raise SourceError(f"{path}: unsupported file type '{path.suffix}'; supported: {supported}")
            return [str(path)]
        raise SourceError(f"source not found: {text}")

    def _read_list(self, list_file: Path) -> list[str]:
        """A .txt list: one path per line, relative paths taken from the list file's folder first."""
        paths = []
        for number, line in enumerate(list_file.read_text().splitlines(), 1):
            entry = line.strip()
            if not entry or entry.startswith("#"):
                continue
            candidate = Path(entry).expanduser()
            if not candidate.is_absolute() and (list_file.parent / candidate).exists():
                candidate = list_file.parent / candidate
            if is_stream(entry):
                paths.append(entry)
            elif not candidate.is_file() or not _is_media(str(candidate)):
                self._fail(entry, f"{list_file}:{number}: not an image or video file")
            else:
                paths.append(str(candidate))
        return paths

    def _fail(self, path: str, reason: str) -> None:
        self.failures.append((path, reason))
        LOGGER.warning(f"skipping {path}: {reason}")

    def __len__(self) -> int:
        return len(self.arrays) or len(self.items)

    def __iter__(self) -> Iterator[Frame]:
        if self.arrays:
            for i, image in enumerate(self.arrays):
                yield Frame(f"array{i}", image, "array", i + 1, len(self.arrays))
            return
        for index, item in enumerate(self.items, 1):
            suffix = Path(item).suffix.lower()
            if is_stream(item) or suffix in VIDEO_SUFFIXES:
                yield from self._video_frames(item, index)
            else:
                try:  # the decoder training and val.py use (EXIF, 16-bit and alpha handled alike)
                    image = read_image(item)
                except ImageReadError:
                    self._fail(item, "cannot be read as an image (corrupt, removed, or not an image)")
                    continue
                yield Frame(item, image, "image", index, len(self.items))

    def _video_frames(self, item: str, index: int) -> Iterator[Frame]:
        live = is_stream(item)
        capture = cv2.VideoCapture(int(item) if item.isdigit() else item)
        try:
            if not capture.isOpened():
                if self.stream:  # the whole source is this one stream: nothing else to go on with
                    raise SourceError(f"cannot open stream or webcam {item}")
                self._fail(item, "cannot be opened as a video")
                return
            frames = 0 if live else int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
            fps = capture.get(cv2.CAP_PROP_FPS)
            fps = fps if fps and np.isfinite(fps) and fps > 0 else 30.0
            frame_number = 0
            while True:
                ok, image = capture.read()
                if not ok:
                    if frame_number == 0:
                        self._fail(item, "no frame could be decoded")
                    return
                frame_number += 1
                kind = "stream" if live else "video"
                yield Frame(item, image, kind, index, len(self.items), frame_number, frames, fps / self.vid_stride)
                for _ in range(self.vid_stride - 1):  # grab() skips a frame without decoding it
                    if not capture.grab():
                        return
                    frame_number += 1
        finally:
            capture.release()


def _is_media(path: str) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES


def _is_pil(value: object) -> bool:
    return type(value).__module__.startswith("PIL.")


def _as_bgr(image: object, index: int) -> np.ndarray:
    """An in-memory image as HWC BGR uint8. numpy arrays are taken as BGR (OpenCV's order); PIL images are RGB."""
    if _is_pil(image):
        return cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2BGR)  # type: ignore[attr-defined]
    array = np.asarray(image)
    if array.ndim == 2:
        array = cv2.cvtColor(array, cv2.COLOR_GRAY2BGR)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise SourceError(f"image {index}: expected an HxWx3 (BGR) array, got shape {array.shape}")
    if array.shape[2] == 4:
        array = array[..., :3]
    if array.dtype != np.uint8:
        raise SourceError(f"image {index}: expected dtype uint8 (0-255), got {array.dtype}")
    return np.ascontiguousarray(array)
