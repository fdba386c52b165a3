"""Decode a photo from bytes, a path or an array into upright 8-bit RGB, refusing what is unsafe.

Order of checks: byte size (before reading a file), declared pixel count (from the header, before any
pixel is decoded), then decoding. A decompression bomb is therefore refused from its header and never
allocated. EXIF orientation is applied, so ``LoadedImage.rgb`` is what a person sees in a photo viewer.

Bounded memory and time: a photo is decoded straight to the *working resolution*, its long side at most
``WORKING_MAX_SIDE`` px (what the pipeline, the texture and the preview use). A JPEG is decoded at 1/2,
1/4 or 1/8 scale by the decoder itself (Pillow's draft mode, no full-size buffer); other formats are
decoded at full size (at most ``MAX_PIXELS`` pixels, ``DECODE_BUDGET_BYTES`` of memory) and converted
and reduced in strips of rows, so no full-size intermediate beyond the decoder's own buffer exists.
``LoadedImage.original_width``/``original_height`` keep the photo's own size; ``LoadedImage.scale``
maps working pixels to the photo's (``munet.pipeline`` reports the camera in the photo's pixels).
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

WORKING_MAX_SIDE = 1536
"""Default long side (pixels) of the decoded image: larger photos are decoded downscaled to it. The fit's
silhouette terms and the texture's sampling cost grow with the image's pixels: at 1536 px a 24 MP photo
costs the pipeline ~1.1x what a 1 MP (1224 px) one does; at 2048 px it cost ~1.6x (measured with
``benchmarks.coldstart``, 2 busy cores)."""

DECODE_BUDGET_BYTES = 192 * 1024 * 1024
"""Most memory the decoder's own buffer may take (pixels actually decoded x bytes per pixel); an image
that needs more is refused before decoding. 40 MP at 4 bytes per pixel (RGBA, or RGB stored as RGBX) fits."""

_STRIP_PIXELS = 1 << 21  # pixels converted at a time (~2 M: a few MB of temporaries per strip)
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}
"""EXIF orientation -> the transposition that makes the stored pixels upright (as ``ImageOps.exif_transpose``)."""

ALPHA_BACKGROUND = (128, 128, 128)
"""Neutral grey that transparent pixels are composited over (RGB, 0-255)."""

_FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)
_EXIF_IFD = 0x8769
_EXIF_ORIENTATION = 0x0112
_EXIF_FOCAL_35MM = 0xA405


@dataclasses.dataclass(frozen=True)
class LoadedImage:
    """A decoded, upright photo.

    rgb: (H, W, 3) uint8, C-contiguous, RGB, EXIF orientation applied, at the working resolution.
    width, height: pixels of ``rgb``, after orientation (``width == rgb.shape[1]``).
    focal_length_35mm: EXIF FocalLengthIn35mmFilm in millimetres, or None when absent or zero.
    focal_px_from_exif: focal length in pixels of ``rgb`` derived from the 35 mm equivalent over the
        diagonal (``f35 * hypot(W, H) / hypot(36, 24)``), or None.
    format: the decoder's format name (``"JPEG"``, ``"PNG"``, ...), or ``"array"`` for array input.
    orientation: the EXIF orientation tag that was applied (1 when none).
    original_width, original_height: the photo's own size in pixels, after orientation (0 when
        constructed without them: then the same as ``width``/``height``).
    """

    rgb: np.ndarray
    width: int
    height: int
    focal_length_35mm: float | None = None
    focal_px_from_exif: float | None = None
    format: str = "array"
    orientation: int = 1
    original_width: int = 0
    original_height: int = 0

    def __post_init__(self) -> None:
        if not self.original_width or not self.original_height:
            object.__setattr__(self, "original_width", self.width)
            object.__setattr__(self, "original_height", self.height)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels of ``rgb``."""
        return self.width, self.height

    @property
    def original_size(self) -> tuple[int, int]:
        """(width, height) of the photo itself, after orientation."""
        return self.original_width, self.original_height

    @property
    def scale(self) -> tuple[float, float]:
        """(sx, sy): working pixels per photo pixel along x and y (1.0 when not downscaled)."""
        return self.width / self.original_width, self.height / self.original_height


def load_image(
    source: bytes | bytearray | memoryview | str | os.PathLike | np.ndarray,
    max_pixels: int = MAX_PIXELS,
    max_bytes: int = MAX_BYTES,
    max_side: int | None = WORKING_MAX_SIDE,
) -> LoadedImage:
    """Load a photo as upright 8-bit RGB at the working resolution.

    source: encoded image bytes (JPEG, PNG, anything Pillow reads), a file path, or an array
        (H, W) / (H, W, 3) / (H, W, 4) in RGB(A) order, dtype uint8, uint16 (full 16-bit range) or
        float (in [0, 1]).
    max_pixels: refuse images with more pixels to decode than this, before decoding (the declared
        width x height; for a JPEG decoded at 1/k scale, that over k^2).
    max_bytes: refuse encoded inputs (bytes or files) larger than this.
    max_side: long side of the returned image in pixels: a larger photo is downscaled (aspect kept,
        ``original_width``/``original_height`` record its size); None keeps the photo's size.

    Raises ``BadImageError`` (not an image, corrupt, truncated, zero pixels, missing file),
    ``ImageTooLargeError`` (over ``max_pixels``, ``max_bytes`` or ``DECODE_BUDGET_BYTES``),
    ``ValueError`` for an array of the wrong shape or dtype.
    """
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be >= 1 or None, not {max_side}")
    if isinstance(source, np.ndarray):
        return _from_array(source, max_pixels, max_side)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) > max_bytes:
            raise ImageTooLargeError(
                f"the image is {len(source):,} bytes, more than the limit of {max_bytes:,}: send a smaller file"
            )
        return _decode(source, max_pixels, max_side, name="the image")
    if isinstance(source, (str, os.PathLike)):
        return _decode(_read_file(pathlib.Path(source), max_bytes), max_pixels, max_side, name=str(source))
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


def _open(data: bytes | bytearray | memoryview, name: str) -> Image.Image:
    if not len(data):
        raise BadImageError(f"{name} is empty (0 bytes): send a JPEG or PNG photo")
    try:
        with warnings.catch_warnings():
            # Our own limit (checked next) is what counts; Pillow's bomb warning would only be noise.
            # (catch_warnings is process-global; a race with another thread can only misplace this filter.)
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
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


def _decode(data: bytes | bytearray | memoryview, max_pixels: int, max_side: int | None, name: str) -> LoadedImage:
    image = _open(data, name)
    with image:
        width, height = image.size  # stored orientation
        if width <= 0 or height <= 0:
            raise BadImageError(f"{name} has zero pixels ({width}x{height}): send a photo with content")
        target = _target_size(width, height, max_side)
        try:
            if target != (width, height) and image.format == "JPEG":
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                    image.draft(None, target)  # the decoder itself scales by 1/2, 1/4 or 1/8 (>= target)
            _check_pixels(width, height, max_pixels, name, decoded=image.size)
            _check_budget(image, name)
            image.load()
            exif = image.getexif()  # after load: a PNG's eXIf chunk may follow its pixels
            orientation = _orientation(exif)
            rgb = _working_rgb(image, target, orientation)
        except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as e:
            raise BadImageError(f"{name} is corrupt or truncated ({e}): send the complete file") from e
        image_format = image.format or "unknown"

    focal_35 = _focal_35mm(exif)
    h, w = rgb.shape[:2]
    original_w, original_h = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
    focal_px = focal_35 * math.hypot(w, h) / _FULL_FRAME_DIAGONAL_MM if focal_35 else None
    logger.debug("decoded %s: %s %dx%d to %dx%d, orientation %d, f35=%s", name, image_format, original_w, original_h,
                 w, h, orientation, focal_35)
    return LoadedImage(rgb=rgb, width=w, height=h, focal_length_35mm=focal_35, focal_px_from_exif=focal_px,
                       format=image_format, orientation=orientation, original_width=original_w,
                       original_height=original_h)


def _target_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """The working size of a (width, height) photo: long side at most ``max_side``, aspect kept."""
    if max_side is None or max(width, height) <= max_side:
        return width, height
    factor = max_side / max(width, height)
    return max(1, min(max_side, round(width * factor))), max(1, min(max_side, round(height * factor)))


def _check_pixels(width: int, height: int, max_pixels: int, name: str,
                  decoded: tuple[int, int] | None = None) -> None:
    if width <= 0 or height <= 0:
        raise BadImageError(f"{name} has zero pixels ({width}x{height}): send a photo with content")
    decoded_w, decoded_h = decoded or (width, height)
    if decoded_w * decoded_h > max_pixels:
        at = "" if (decoded_w, decoded_h) == (width, height) else f" (decoded at {decoded_w}x{decoded_h})"
        raise ImageTooLargeError(
            f"{name} is {width}x{height} = {width * height:,} pixels{at}, more than the limit of {max_pixels:,}: "
            "downscale it first"
        )


def _bytes_per_pixel(mode: str) -> int:
    """Bytes per pixel of Pillow's own buffer for ``mode`` (RGB is stored as 4 bytes)."""
    if mode in ("1", "L", "P"):
        return 1
    if mode.startswith("I;16"):
        return 2
    return 4


def _check_budget(image: Image.Image, name: str) -> None:
    width, height = image.size
    needed = width * height * _bytes_per_pixel(image.mode)
    if needed > DECODE_BUDGET_BYTES:
        raise ImageTooLargeError(
            f"{name} ({image.mode}, {width}x{height}) would take {needed / 2**20:,.0f} MiB to decode, more than "
            f"the {DECODE_BUDGET_BYTES / 2**20:,.0f} MiB bound: downscale it first (a JPEG is decoded at reduced scale)"
        )


def _working_rgb(image: Image.Image, target: tuple[int, int], orientation: int) -> np.ndarray:
    """The decoded ``image`` (stored orientation) as upright (H, W, 3) uint8 RGB of ``target`` size (stored
    orientation). Box-reduced by the integer factor that keeps it at least ``target``, resized to ``target``,
    turned upright; modes other than plain RGB/L are converted in strips of rows, each reduced on its own,
    so no full-size converted copy exists."""
    width, height = image.size
    factor = max(1, min(width // target[0], height // target[1]))
    if image.mode in ("RGB", "L") and "transparency" not in image.info:
        return _finish(image.reduce(factor) if factor > 1 else image, target, orientation)
    divide_floats = image.mode == "F" and _float_max(image) > 1.0
    rows = max(factor, (_STRIP_PIXELS // width) // factor * factor)
    strips = []
    for top in range(0, height, rows):
        part = image.crop((0, top, width, min(height, top + rows)))
        if factor > 1 and part.mode in ("RGBA", "LA"):  # Pillow reduces these alpha-weighted
            strip = _to_rgb8(part.reduce(factor))
        else:
            strip = _to_rgb8(part, divide_floats)
            if factor > 1:
                strip = np.asarray(Image.fromarray(strip).reduce(factor))
        strips.append(strip)
    rgb = strips[0] if len(strips) == 1 else np.concatenate(strips)
    del strips
    return _finish(Image.fromarray(rgb), target, orientation)


def _finish(picture: Image.Image, target: tuple[int, int], orientation: int) -> np.ndarray:
    """Resize an RGB or L ``picture`` to ``target`` (width, height) when it differs, apply ``orientation``,
    return (H, W, 3) uint8 RGB."""
    if picture.size != target:
        picture = picture.resize(target, Image.Resampling.BILINEAR)  # antialiased when shrinking
    if orientation in _TRANSPOSE:
        picture = picture.transpose(_TRANSPOSE[orientation])
    return np.ascontiguousarray(np.asarray(picture.convert("RGB") if picture.mode != "RGB" else picture, dtype=np.uint8))


def _float_max(image: Image.Image) -> float:
    """The largest sample of a mode "F" image, NaN ignored (0 when there is none), scanned in strips."""
    width, height = image.size
    rows = max(1, _STRIP_PIXELS // width)
    best = 0.0
    for top in range(0, height, rows):
        samples = np.asarray(image.crop((0, top, width, min(height, top + rows))), dtype=np.float32)
        numbers = samples[~np.isnan(samples)]
        if numbers.size:
            best = max(best, float(numbers.max()))
    return best


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


def _to_rgb8(image: Image.Image, divide_floats: bool = False) -> np.ndarray:
    """Any Pillow mode -> (H, W, 3) uint8 RGB; alpha composited over ``ALPHA_BACKGROUND``. A mode "F"
    image's samples are 0-1, or 0-255 when ``divide_floats``."""
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        return _array_rgb8(np.asarray(image))
    if mode == "F":
        samples = np.asarray(image, dtype=np.float32)
        return _array_rgb8(samples / 255.0 if divide_floats else samples)
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


def _array_rgb8(array: np.ndarray) -> np.ndarray:
    """(H, W) / (H, W, 3) / (H, W, 4) samples -> (H, W, 3) uint8 RGB (see ``_to_uint8``)."""
    array = _to_uint8(array)
    if array.ndim == 2:
        return np.repeat(array[..., None], 3, axis=2)
    if array.shape[2] == 4:
        return _composite(array)
    return np.ascontiguousarray(array)


def _from_array(array: np.ndarray, max_pixels: int, max_side: int | None) -> LoadedImage:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(f"image array must have shape (H, W), (H, W, 3) or (H, W, 4), got {array.shape}")
    height, width = array.shape[:2]
    _check_pixels(width, height, max_pixels, "the image array")
    target = _target_size(width, height, max_side)
    rows = max(1, _STRIP_PIXELS // width)
    strips = [_array_rgb8(array[top:top + rows]) for top in range(0, height, rows)]
    rgb = strips[0] if len(strips) == 1 else np.concatenate(strips)
    if target != (width, height):
        rgb = _finish(Image.fromarray(rgb), target, 1)
    return LoadedImage(rgb=rgb, width=target[0], height=target[1], original_width=width, original_height=height)


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
