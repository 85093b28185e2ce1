"""Reading images for training: EXIF orientation, grayscale, RGBA and 16-bit handled; and checking that a
file is a complete, decodable image before it enters a dataset."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

# Formats both PIL (used for the checks) and OpenCV (used for decoding) read.
IMAGE_SUFFIXES = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp")
MIN_IMAGE_SIDE = 2  # pixels; anything smaller cannot hold a box
_EXIF_ORIENTATION = 0x0112
_TRANSPOSED_ORIENTATIONS = {5, 6, 7, 8}  # orientations that swap width and height


class ImageReadError(OSError):
    """An image file that cannot be decoded; the message names the file."""


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file to an 8-bit BGR (H, W, 3) array as it is meant to be displayed.

    EXIF orientation is applied; grayscale becomes 3 channels; an alpha channel is dropped (as the reference
    implementations do); 16-bit images are scaled to 8 bits by 255/65535 with rounding (full range kept, not
    clipped); float images are taken as [0, 1]. Non-ASCII paths work (the bytes are read with numpy).
    """
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise ImageReadError(f"{path}: cannot read file: {e}") from None
    # IMREAD_COLOR applies the EXIF orientation and gives 3 channels; ANYDEPTH keeps 16-bit data 16-bit so
    # that we scale it ourselves with rounding.
    image = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_ANYDEPTH) if data.size else None
    if image is None:
        raise ImageReadError(f"{path}: not a decodable image")
    return to_uint8(image)


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
    """Check that `path` is a complete image; return its displayed size (w, h) and None, or None and a reason.

    Catches zero-byte files, unknown or unsupported formats, truncated and corrupt data. JPEGs are decoded at
    1/8 scale (libjpeg's draft mode), which still reads every entropy-coded segment, so truncation is found
    at a fraction of the cost of a full decode.
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
        with Image.open(path) as im:
            im.verify()  # structure checks (chunk CRCs for PNG, markers for JPEG)
        with Image.open(path) as im:
            width, height = im.size
            if im.format == "JPEG":
                im.draft("RGB", (max(1, width // 8), max(1, height // 8)))
            im.load()  # raises on truncated data
            orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
    except UnidentifiedImageError:
        return None, "not an image (unrecognised format)"
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        return None, f"corrupt or truncated image ({e})"
    if orientation in _TRANSPOSED_ORIENTATIONS:
        width, height = height, width
    if min(width, height) < MIN_IMAGE_SIDE:
        return None, f"image too small ({width}x{height})"
    return (width, height), None
