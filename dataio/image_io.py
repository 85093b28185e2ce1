"""Reading images for training, validation and detection: EXIF orientation, grayscale, RGBA and 16-bit handled;
and checking that a file is a complete image before it enters a dataset.

One decoder decides: the scan (`verify_image`) decodes every file with the same OpenCV call the loader
(`read_image`) uses, so a file the scan accepts is a file the loader can read. (The scan once used PIL, which
opens ICO, PCX, TGA and more that OpenCV cannot: such a file named `.jpg` passed the scan, then crashed training.)
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

# Suffixes of the formats the decoder below reads (whatever the suffix, the content decides).
IMAGE_SUFFIXES = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
MIN_IMAGE_SIDE = 2  # pixels; anything smaller cannot hold a box
# IMREAD_COLOR applies the EXIF orientation and gives 3 channels; ANYDEPTH keeps 16-bit data 16-bit so that
# `to_uint8` scales it with rounding.
_DECODE_FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH
_JPEG_START, _JPEG_START_OF_SCAN, _JPEG_END = b"\xff\xd8", b"\xff\xda", b"\xff\xd9"


class ImageReadError(OSError):
    """An image file that cannot be decoded; the message names the file."""


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file to an 8-bit BGR (H, W, 3) array as it is meant to be displayed.

    EXIF orientation is applied; grayscale becomes 3 channels; an alpha channel is dropped (as the reference
    implementations do); 16-bit images are scaled to 8 bits by 255/65535 with rounding (full range kept, not
    clipped); float images are taken as [0, 1]. Non-ASCII paths work (the bytes are read with numpy).
    Raises ImageReadError (naming the file) for a missing, unreadable or undecodable file.
    """
    path = Path(path)
    return to_uint8(_decode(path, _read_bytes(path)))


def _read_bytes(path: Path) -> np.ndarray:
    try:
        return np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise ImageReadError(f"{path}: cannot read file: {e.strerror or e}") from None


def _decode(path: Path, data: np.ndarray) -> np.ndarray:
    """The one decode call of the project: the scan and the loader both come here."""
    try:
        image = cv2.imdecode(data, _DECODE_FLAGS) if data.size else None
    except cv2.error:  # e.g. a header claiming more pixels than OpenCV's limit (CV_IO_MAX_IMAGE_PIXELS)
        image = None
    if image is None:
        raise ImageReadError(f"{path}: not a decodable image")
    return image


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Convert an image of any bit depth to uint8 with the full range of its type mapped to 0..255."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return np.round(image.astype(np.float32) * (255.0 / 65535.0)).astype(np.uint8)
    if np.issubdtype(image.dtype, np.floating):
        return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    info = np.iinfo(image.dtype)
    scaled = (image.astype(np.float64) - info.min) * (255.0 / (info.max - info.min))
    return np.round(scaled).astype(np.uint8)


def verify_image(path: str | Path) -> tuple[tuple[int, int] | None, str | None]:
    """Check that `path` is a complete image the loader can decode; return its displayed size (w, h) and None,
    or None and a reason.

    The file is decoded in full by the loader's own decoder (`read_image`'s), so the size is that of the array
    training gets, EXIF orientation applied. Also refused: zero-byte files, suffixes the loader does not list,
    JPEGs without their end-of-image marker (truncated: some OpenCV versions decode them with a grey bottom and
    only a warning), and images under MIN_IMAGE_SIDE pixels.
    """
    path = Path(path)
    try:
        size_bytes = path.stat().st_size
    except OSError:
        return None, "file not found"
    if size_bytes == 0:
        return None, "empty file (0 bytes)"
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return None, f"unsupported image suffix '{path.suffix}' (supported: {', '.join(IMAGE_SUFFIXES)})"
    try:
        data = _read_bytes(path)
    except ImageReadError as e:
        return None, str(e).removeprefix(f"{path}: ")
    if _is_truncated_jpeg(data):
        return None, "corrupt or truncated image (JPEG without its end-of-image marker)"
    try:
        image = _decode(path, data)
    except ImageReadError:
        return None, _undecodable_reason(path)
    height, width = image.shape[:2]
    if min(width, height) < MIN_IMAGE_SIDE:
        return None, f"image too small ({width}x{height})"
    return (width, height), None


def _is_truncated_jpeg(data: np.ndarray) -> bool:
    """A JPEG whose last scan is not followed by an end-of-image marker. Entropy-coded data never holds the
    marker bytes (0xFF is stuffed), so data after a complete image (camera trailers) is still accepted."""
    if data[:2].tobytes() != _JPEG_START:
        return False
    raw = data.tobytes()
    return raw.rfind(_JPEG_END) < raw.rfind(_JPEG_START_OF_SCAN)


def _undecodable_reason(path: Path) -> str:
    """Why the decoder refused a file: a format it does not read at all, or corrupt data."""
    try:
        known_format = cv2.haveImageReader(str(path))  # reads the signature only
    except cv2.error:
        known_format = False
    if not known_format:
        return "not an image (unrecognised format: not one OpenCV decodes, e.g. an ICO, PCX or TGA file)"
    return "corrupt or truncated image (OpenCV cannot decode it)"
