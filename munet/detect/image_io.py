"""Decode a photo from bytes, a path or an array into upright 8-bit RGB, refusing what is unsafe.

Order of checks: byte size (before reading a file), declared pixel count (from the header, before any
pixel is decoded), then decoding. A decompression bomb is therefore refused from its header and never
allocated. EXIF orientation is applied, so ``LoadedImage.rgb`` is what a person sees in a photo viewer.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import math
import os
import pathlib
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from munet.errors import BadImageError, ImageTooLargeError

logger = logging.getLogger(__name__)

MAX_PIXELS = 40_000_000
"""Default pixel limit (width x height), checked from the header before decoding."""

MAX_BYTES = 128 * 1024 * 1024
"""Default limit on the encoded size in bytes."""

ALPHA_BACKGROUND = (128, 128, 128)
"""Neutral grey that transparent pixels are composited over (RGB, 0-255)."""

_FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)
_EXIF_IFD = 0x8769
_EXIF_ORIENTATION = 0x0112
_EXIF_FOCAL_35MM = 0xA405


@dataclasses.dataclass(frozen=True)
class LoadedImage:
    """A decoded, upright photo.

    rgb: (H, W, 3) uint8, C-contiguous, RGB, EXIF orientation applied.
    width, height: pixels, after orientation (``width == rgb.shape[1]``).
    focal_length_35mm: EXIF FocalLengthIn35mmFilm in millimetres, or None when absent or zero.
    focal_px_from_exif: focal length in pixels of this image derived from the 35 mm equivalent over the
        diagonal (``f35 * hypot(W, H) / hypot(36, 24)``), or None.
    format: the decoder's format name (``"JPEG"``, ``"PNG"``, ...), or ``"array"`` for array input.
    orientation: the EXIF orientation tag that was applied (1 when none).
    """

    rgb: np.ndarray
    width: int
    height: int
    focal_length_35mm: float | None = None
    focal_px_from_exif: float | None = None
    format: str = "array"
    orientation: int = 1

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.width, self.height


def load_image(
    source: bytes | bytearray | memoryview | str | os.PathLike | np.ndarray,
    max_pixels: int = MAX_PIXELS,
    max_bytes: int = MAX_BYTES,
) -> LoadedImage:
    """Load a photo as upright 8-bit RGB.

    source: encoded image bytes (JPEG, PNG, anything Pillow reads), a file path, or an array
        (H, W) / (H, W, 3) / (H, W, 4) in RGB(A) order, dtype uint8, uint16 (full 16-bit range) or
        float (in [0, 1]).
    max_pixels: refuse images whose declared width x height exceeds this, before decoding.
    max_bytes: refuse encoded inputs (bytes or files) larger than this.

    Raises ``BadImageError`` (not an image, corrupt, truncated, zero pixels, missing file),
    ``ImageTooLargeError`` (over ``max_pixels`` or ``max_bytes``), ``ValueError`` for an array of the
    wrong shape or dtype.
    """
    if isinstance(source, np.ndarray):
        return _from_array(source, max_pixels)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if len(data) > max_bytes:
            raise ImageTooLargeError(
                f"the image is {len(data):,} bytes, more than the limit of {max_bytes:,}: send a smaller file"
            )
        return _decode(data, max_pixels, name="the image")
    if isinstance(source, (str, os.PathLike)):
        return _decode(_read_file(pathlib.Path(source), max_bytes), max_pixels, name=str(source))
    raise TypeError(f"load_image takes bytes, a path or a numpy array, not {type(source).__name__}")


def _read_file(path: pathlib.Path, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise BadImageError(f"{path} is a folder, not an image file: give the path of a photo")
        if size > max_bytes:
            raise ImageTooLargeError(
                f"{path} is {size:,} bytes, more than the limit of {max_bytes:,}: use a smaller file"
            )
        return path.read_bytes()
    except FileNotFoundError as e:
        raise BadImageError(f"no such image file: {path}: check the path") from e
    except OSError as e:
        raise BadImageError(f"cannot read image file {path}: {e.strerror or e}") from e


def _decode(data: bytes, max_pixels: int, name: str) -> LoadedImage:
    if not data:
        raise BadImageError(f"{name} is empty (0 bytes): send a JPEG or PNG photo")
    try:
        with warnings.catch_warnings():
            # Our own limit (checked next) is what counts; Pillow's bomb warning would only be noise.
            # (catch_warnings is process-global; a race with another thread can only misplace this filter.)
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise ImageTooLargeError(
            f"{name} declares more pixels than the decoder's safety limit ({e}); refused before decoding: "
            "send a smaller image"
        ) from e
    except UnidentifiedImageError as e:
        raise BadImageError(
            f"{name} is not in an image format we can read (or its header is corrupt): send a JPEG or PNG photo"
        ) from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise BadImageError(f"{name} has a corrupt header ({e}): send a valid JPEG or PNG photo") from e

    with image:
        width, height = image.size
        _check_pixels(width, height, max_pixels, name)
        try:
            image.load()
            exif = image.getexif()  # after load: a PNG's eXIf chunk may follow its pixels
            rgb = _to_rgb8(ImageOps.exif_transpose(image))
        except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as e:
            raise BadImageError(f"{name} is corrupt or truncated ({e}): send the complete file") from e

    orientation = _orientation(exif)
    focal_35 = _focal_35mm(exif)
    h, w = rgb.shape[:2]
    focal_px = focal_35 * math.hypot(w, h) / _FULL_FRAME_DIAGONAL_MM if focal_35 else None
    logger.debug("decoded %s: %s %dx%d, orientation %d, f35=%s", name, image.format, w, h, orientation, focal_35)
    return LoadedImage(
        rgb=rgb,
        width=w,
        height=h,
        focal_length_35mm=focal_35,
        focal_px_from_exif=focal_px,
        format=image.format or "unknown",
        orientation=orientation,
    )


def _check_pixels(width: int, height: int, max_pixels: int, name: str) -> None:
    if width <= 0 or height <= 0:
        raise BadImageError(f"{name} has zero pixels ({width}x{height}): send a photo with content")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{name} is {width}x{height} = {width * height:,} pixels, more than the limit of {max_pixels:,}: "
            "downscale it first"
        )


def _orientation(exif: Image.Exif) -> int:
    try:
        value = int(exif.get(_EXIF_ORIENTATION, 1))
    except (TypeError, ValueError):
        return 1
    return value if 1 <= value <= 8 else 1


def _focal_35mm(exif: Image.Exif) -> float | None:
    try:
        value = exif.get_ifd(_EXIF_IFD).get(_EXIF_FOCAL_35MM)
        focal = float(value) if value is not None else 0.0
    except (TypeError, ValueError, ZeroDivisionError, KeyError, OSError):
        return None
    return focal if math.isfinite(focal) and focal > 0 else None


def _to_rgb8(image: Image.Image) -> np.ndarray:
    """Any Pillow mode -> (H, W, 3) uint8 RGB; alpha composited over ``ALPHA_BACKGROUND``."""
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        return _from_array(np.asarray(image), max_pixels=None).rgb
    if mode == "F":  # float samples, conventionally 0-255 (0-1 when the maximum says so)
        samples = np.asarray(image, dtype=np.float32)
        return _from_array(samples if np.nanmax(samples) <= 1.0 else samples / 255.0, max_pixels=None).rgb
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode in ("LA", "La", "PA", "RGBa") or (mode == "L" and "transparency" in image.info):
        image = image.convert("RGBA")
    elif mode == "RGB" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        return _composite(np.asarray(image))
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))


def _composite(rgba: np.ndarray) -> np.ndarray:
    """(H, W, 4) uint8 straight alpha -> (H, W, 3) uint8 over the neutral background."""
    alpha = rgba[..., 3:4].astype(np.uint16)
    background = np.asarray(ALPHA_BACKGROUND, np.uint16)
    # rgb * a + bg * (255 - a) <= 255 * 255 fits uint16; (x + 127) // 255 rounds x / 255.
    out = rgba[..., :3].astype(np.uint16) * alpha + background * (255 - alpha) + 127
    return np.ascontiguousarray((out // 255).astype(np.uint8))


def _from_array(array: np.ndarray, max_pixels: int | None) -> LoadedImage:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(f"image array must have shape (H, W), (H, W, 3) or (H, W, 4), got {array.shape}")
    height, width = array.shape[:2]
    if max_pixels is not None:
        _check_pixels(width, height, max_pixels, "the image array")
    elif width == 0 or height == 0:
        raise BadImageError(f"the image has zero pixels ({width}x{height}): send a photo with content")
    array = _to_uint8(array)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    elif array.shape[2] == 4:
        array = _composite(array)
    return LoadedImage(rgb=np.ascontiguousarray(array), width=width, height=height)


def _to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if array.dtype == np.uint16 or array.dtype.kind in "iu":
        # 16-bit range (PNG "I;16", or Pillow's 32-bit "I" holding 16-bit samples): 65535 -> 255.
        scaled = np.clip(array, 0, 65535).astype(np.float32) / 257.0
        return np.rint(scaled).astype(np.uint8)
    if array.dtype.kind == "f":
        return np.rint(np.clip(np.nan_to_num(array, nan=0.0), 0.0, 1.0) * 255.0).astype(np.uint8)
    raise ValueError(f"image array dtype must be uint8, uint16 or float in [0, 1], got {array.dtype}")
