"""Front end (munet.detect): real MediaPipe on real photos, image decoding and refusal, the crop."""

from __future__ import annotations

import io
import struct
import threading
import time
import tracemalloc
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from munet.detect import (
    BODY_PARTS,
    MEDIAPIPE_LANDMARKS,
    MEDIAPIPE_WORLD_TO_BLENDER,
    Detection,
    LoadedImage,
    PoseDetector,
    crop_image,
    crop_params,
    load_image,
    unseen_parts,
)
from munet.detect.image_io import ALPHA_BACKGROUND
from munet.errors import BadImageError, ImageTooLargeError, NoPersonFoundError
from benchmarks.coldstart import decode_in_child
from photos import real_photo

NAME = {name: i for i, name in enumerate(MEDIAPIPE_LANDMARKS)}


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _patch_png_size(data: bytes, width: int, height: int) -> bytes:
    """Rewrite the IHDR chunk's width and height (and its CRC) of a PNG."""
    assert data[12:16] == b"IHDR"
    ihdr = struct.pack(">II", width, height) + data[24:29]
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    return data[:16] + ihdr + crc + data[33:]


@pytest.fixture(scope="module")
def detector():
    with PoseDetector() as pose:
        yield pose


@pytest.fixture(scope="module")
def lunge(detector) -> tuple[LoadedImage, Detection]:
    image = load_image(real_photo("lunge.jpg"))
    return image, detector.detect(image)


# --------------------------------------------------------------------------------------------- detection


def test_lunge_full_body_geometry(lunge):
    image, det = lunge
    assert (image.width, image.height) == (1000, 1498) and det.image_size == (1000, 1498)
    assert det.keypoints_px.shape == (33, 2) and det.keypoints_px.dtype == np.float32
    assert det.visibility.shape == (33,) and det.visibility.dtype == np.float32
    assert det.world_keypoints_m.shape == (33, 3) and det.world_keypoints_m.dtype == np.float32
    assert det.landmark_names == MEDIAPIPE_LANDMARKS and len(MEDIAPIPE_LANDMARKS) == 33
    assert det.mask.shape == (1498, 1000) and det.mask.dtype == np.float32
    assert 0.0 <= det.mask.min() and det.mask.max() <= 1.0
    assert det.unseen_parts == () and det.seen.all() and det.confidence > 0.8

    kp = det.keypoints_px
    hips_y = kp[[NAME["left_hip"], NAME["right_hip"]], 1]
    for ankle in ("left_ankle", "right_ankle"):
        assert kp[NAME[ankle], 1] > hips_y.max()
    assert kp[NAME["nose"], 1] < hips_y.min()

    # World keypoints: hip-centred, metres, Z up (head above ankles), a plausible body size.
    world = det.world_keypoints_m
    hip_centre = world[[NAME["left_hip"], NAME["right_hip"]]].mean(0)
    assert np.abs(hip_centre).max() < 0.05
    assert world[NAME["nose"], 2] > 0.3 and world[NAME["left_ankle"], 2] < -0.3
    assert 0.5 < world[NAME["nose"], 2] - world[[NAME["left_ankle"], NAME["right_ankle"]], 2].min() < 1.5


def test_lunge_mask_and_box(lunge):
    _, det = lunge
    x0, y0, x1, y1 = det.person_box_px
    assert 0 <= x0 < x1 <= 1000 and 0 <= y0 < y1 <= 1498
    # Every seen keypoint is inside the box.
    kp = det.keypoints_px[det.seen]
    assert (kp[:, 0] >= x0).all() and (kp[:, 0] <= x1).all() and (kp[:, 1] >= y0).all() and (kp[:, 1] <= y1).all()
    # The mask is the person: nearly all of it lies in the box, and its bounding box matches the box.
    person = det.mask >= 0.5
    inside = person[int(y0) : int(np.ceil(y1)), int(x0) : int(np.ceil(x1))].sum()
    assert inside / person.sum() > 0.97
    rows, cols = np.nonzero(person)
    mx0, my0, mx1, my1 = cols.min(), rows.min(), cols.max() + 1, rows.max() + 1
    inter = max(0, min(x1, mx1) - max(x0, mx0)) * max(0, min(y1, my1) - max(y0, my0))
    union = (x1 - x0) * (y1 - y0) + (mx1 - mx0) * (my1 - my0) - inter
    assert inter / union > 0.85
    # The person fills a fair part of the box (not a box around the whole photo).
    assert 0.2 < person[int(y0) : int(y1), int(x0) : int(x1)].mean() < 0.9
    assert det.report()["unseen_parts"] == []


@pytest.mark.parametrize("name, also_unseen", [("astronaut.png", ("hips",)), ("grace_hopper.jpg", ("arms", "hips"))])
def test_partial_body_names_unseen_parts(detector, name, also_unseen):
    det = detector.detect(load_image(real_photo(name)))
    assert "legs" in det.unseen_parts and "feet" in det.unseen_parts
    for part in also_unseen:
        assert part in det.unseen_parts
    assert "head" not in det.unseen_parts and "shoulders" not in det.unseen_parts
    # MediaPipe extrapolates the legs below the photo; they are never "seen", whatever their visibility.
    width, height = det.image_size
    below = det.keypoints_px[:, 1] >= height
    assert below[NAME["left_ankle"]] and not det.seen[below].any() and not det.in_frame[below].any()
    assert (det.keypoint_weights[below] == 0).all()
    x0, y0, x1, y1 = det.person_box_px
    assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height


def test_out_of_frame_points_are_unseen_even_when_visible(detector):
    """MediaPipe's visibility can stay high for points outside the photo: crop lunge above the knees."""
    rgb = load_image(real_photo("lunge.jpg")).rgb
    det = detector.detect(np.ascontiguousarray(rgb[500:1150]))
    ankles = [NAME["left_ankle"], NAME["right_ankle"]]
    assert (det.keypoints_px[ankles, 1] >= 650).all()
    outside = ~det.in_frame
    assert (det.visibility[outside] >= 0.5).any()  # MediaPipe claims some of them are visible...
    assert not det.seen[outside].any()  # ...but outside the photo nothing counts as seen
    assert "legs" in det.unseen_parts and "feet" in det.unseen_parts


@pytest.mark.parametrize("kind", ["gradient", "landscape"])
def test_no_person(detector, kind):
    height, width = 480, 640
    if kind == "gradient":
        rgb = np.zeros((height, width, 3), np.uint8)
        rgb[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
        rgb[..., 2] = np.linspace(255, 0, height, dtype=np.uint8)[:, None]
    else:  # sky over smooth hills: low-frequency noise
        rng = np.random.default_rng(0)
        noise = cv2.resize(rng.random((12, 16), dtype=np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
        horizon = (0.5 + 0.15 * np.sin(np.linspace(0, 6, width)))[None, :] * height
        ground = np.arange(height)[:, None] > horizon
        rgb = np.empty((height, width, 3), np.float32)
        rgb[...] = (120, 170, 230)
        rgb[ground] = (60, 120, 40)
        rgb *= (0.7 + 0.5 * noise)[..., None]
        rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    with pytest.raises(NoPersonFoundError) as info:
        detector.detect(rgb)
    assert info.value.code == "no_person_found" and "person" in str(info.value)


def test_detector_is_safe_across_threads(detector, lunge):
    image, expected = lunge
    results: list[Detection] = []
    threads = [threading.Thread(target=lambda: results.append(detector.detect(image))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 2
    for det in results:
        np.testing.assert_allclose(det.keypoints_px, expected.keypoints_px, atol=1e-3)


def test_detector_rejects_bad_arrays_and_use_after_close():
    pose = PoseDetector()
    with pytest.raises(ValueError, match="uint8"):
        pose.detect(np.zeros((10, 10), np.uint8))
    pose.close()
    pose.close()  # idempotent
    with pytest.raises(RuntimeError, match="close"):
        pose.detect(np.zeros((10, 10, 3), np.uint8))


# --------------------------------------------------------------------------------------- image decoding


def test_exif_rotated_photo_is_upright(detector, lunge):
    upright, _ = lunge
    source = Image.fromarray(upright.rgb)
    # Orientation 6 = "rotate 90 degrees clockwise to view": store the pixels turned counter-clockwise.
    turned = {6: source.transpose(Image.Transpose.ROTATE_90), 8: source.transpose(Image.Transpose.ROTATE_270)}
    for orientation, stored in turned.items():
        exif = Image.Exif()
        exif[0x0112] = orientation
        buffer = io.BytesIO()
        stored.save(buffer, format="JPEG", quality=95, exif=exif.tobytes())
        assert stored.size == (1498, 1000)
        image = load_image(buffer.getvalue())
        assert image.size == (1000, 1498) and image.orientation == orientation
        assert np.abs(image.rgb.astype(np.int16) - upright.rgb).mean() < 3.0
        det = detector.detect(image)
        kp = det.keypoints_px
        assert kp[[NAME["left_ankle"], NAME["right_ankle"]], 1].min() > kp[NAME["nose"], 1] + 300


def test_exif_focal_length(tmp_path):
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0xA405] = 26  # FocalLengthIn35mmFilm, mm
    path = tmp_path / "phone.jpg"
    Image.new("RGB", (400, 300), (10, 20, 30)).save(path, format="JPEG", exif=exif.tobytes())
    image = load_image(path)
    assert image.focal_length_35mm == 26.0
    assert image.focal_px_from_exif == pytest.approx(26.0 * 500.0 / np.hypot(36.0, 24.0))
    assert load_image(_png_bytes(Image.new("RGB", (4, 4)))).focal_px_from_exif is None


def test_rgba_composited_over_neutral_background():
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., :3] = (200, 10, 90)
    rgba[:, :2, 3] = 255  # opaque
    rgba[:, 2:4, 3] = 0  # transparent: colour channels are garbage to be ignored
    rgba[:, 4:, 3] = 128  # half
    image = load_image(_png_bytes(Image.fromarray(rgba, "RGBA")))
    assert image.rgb.dtype == np.uint8 and image.rgb.shape == (4, 6, 3)
    assert (image.rgb[:, :2] == (200, 10, 90)).all()
    assert (image.rgb[:, 2:4] == ALPHA_BACKGROUND).all()
    expected = np.rint((np.array([200, 10, 90]) * 128 + np.array(ALPHA_BACKGROUND) * 127) / 255)
    assert np.abs(image.rgb[:, 4:].astype(int) - expected).max() <= 1
    # The same from an array, and a palette PNG with a transparent index.
    np.testing.assert_array_equal(load_image(rgba).rgb, image.rgb)
    palette = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), "P")
    palette.putpalette([255, 0, 0, 0, 0, 255])
    buffer = io.BytesIO()
    palette.save(buffer, format="PNG", transparency=0)
    loaded = load_image(buffer.getvalue()).rgb
    assert (loaded[0, 0] == ALPHA_BACKGROUND).all() and (loaded[0, 1] == (0, 0, 255)).all()


def test_grayscale_and_16_bit_png():
    gray = (np.arange(48, dtype=np.uint8).reshape(6, 8) * 5).astype(np.uint8)
    image = load_image(_png_bytes(Image.fromarray(gray, "L")))
    assert image.rgb.shape == (6, 8, 3)
    for channel in range(3):
        np.testing.assert_array_equal(image.rgb[..., channel], gray)

    gray16 = (np.arange(48, dtype=np.uint32).reshape(6, 8) * 1365).astype(np.uint16)
    image = load_image(_png_bytes(Image.fromarray(gray16)))
    expected = np.rint(gray16 / 257.0).astype(np.uint8)
    assert image.rgb[..., 0].max() > 200  # scaled, not clipped to white or truncated to black
    for channel in range(3):
        np.testing.assert_array_equal(image.rgb[..., channel], expected)

    rgb16 = np.stack([gray16, 65535 - gray16, gray16 // 2], axis=-1)
    ok, encoded = cv2.imencode(".png", rgb16[..., ::-1])  # 48-bit PNG
    assert ok
    image = load_image(encoded.tobytes())
    assert np.abs(image.rgb.astype(int) - np.rint(rgb16 / 257.0)).max() <= 1
    np.testing.assert_array_equal(load_image(rgb16).rgb, np.rint(rgb16 / 257.0).astype(np.uint8))


def test_jpeg_from_path_and_bytes_agree(tmp_path):
    path = real_photo("grace_hopper.jpg")
    from_path = load_image(path)
    from_bytes = load_image(path.read_bytes())
    assert from_path.format == "JPEG" and from_path.size == (512, 600)
    np.testing.assert_array_equal(from_path.rgb, from_bytes.rgb)
    assert load_image(str(path)).rgb.flags["C_CONTIGUOUS"]


@pytest.mark.parametrize(
    "data",
    [
        np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8).tobytes(),
        b"",
        b"GIF89a this is not really a gif",
        b"<html><body>not an image</body></html>",
    ],
    ids=["random", "empty", "fake-gif", "html"],
)
def test_non_images_are_bad_image(data):
    with pytest.raises(BadImageError) as info:
        load_image(data)
    assert info.value.code == "bad_image"


def test_truncated_and_corrupt_files_are_bad_image():
    data = real_photo("lunge.jpg").read_bytes()
    with pytest.raises(BadImageError, match="truncated"):
        load_image(data[: len(data) // 2])
    png = _png_bytes(Image.fromarray(np.full((64, 64, 3), 77, np.uint8)))
    with pytest.raises(BadImageError):
        load_image(png[: len(png) - 30])


def test_missing_path_and_folder_are_bad_image(tmp_path):
    missing = tmp_path / "nowhere" / "photo.jpg"
    with pytest.raises(BadImageError, match="photo.jpg") as info:
        load_image(missing)
    assert str(missing) in str(info.value)
    with pytest.raises(BadImageError, match="folder"):
        load_image(tmp_path)


def test_zero_pixels_are_bad_image():
    with pytest.raises(BadImageError, match="zero pixels"):
        load_image(np.zeros((0, 10, 3), np.uint8))
    with pytest.raises(BadImageError):
        load_image(_patch_png_size(_png_bytes(Image.new("RGB", (4, 4))), 0, 4))
    with pytest.raises(ValueError, match="shape"):
        load_image(np.zeros((4, 4, 2), np.uint8))


@pytest.mark.parametrize("size", [(100_000, 100_000), (10_000, 10_000), (8_000, 6_000)])
def test_png_bomb_refused_from_its_header(size):
    """(100k)^2 trips Pillow's own bomb guard, 10k^2 only its warning, 8000x6000 only our 40 MP limit."""
    data = _patch_png_size(_png_bytes(Image.new("L", (16, 16))), *size)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ImageTooLargeError) as info:
            load_image(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 1.0 and peak < 5_000_000
    assert info.value.code == "image_too_large"


def test_jpeg_bomb_and_limits():
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buffer, format="JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 60_000, 60_000)  # height, width
    with pytest.raises(ImageTooLargeError):
        load_image(bytes(data))
    photo = real_photo("grace_hopper.jpg")
    with pytest.raises(ImageTooLargeError, match="pixels"):
        load_image(photo, max_pixels=512 * 600 - 1)
    assert load_image(photo, max_pixels=512 * 600).size == (512, 600)
    with pytest.raises(ImageTooLargeError, match="bytes"):
        load_image(photo, max_bytes=1000)
    with pytest.raises(ImageTooLargeError, match="bytes"):
        load_image(photo.read_bytes(), max_bytes=1000)
    with pytest.raises(ImageTooLargeError):
        load_image(np.zeros((100, 100, 3), np.uint8), max_pixels=9_999)


# ------------------------------------------------------------------------------------------------ crop


def test_crop_round_trip_and_matrix():
    params = crop_params((100.0, 50.0, 300.0, 450.0), (640, 480), pad=0.15)
    assert params.center_px == (200.0, 250.0) and params.side_px == pytest.approx(400 * 1.3)
    points = np.random.default_rng(2).uniform(-100, 700, (50, 2))
    for resolution in (64, 256, 1000):
        crop = params.to_crop(points, resolution)
        np.testing.assert_allclose(params.to_full(crop, resolution), points, atol=1e-9)
        homogeneous = np.c_[points, np.ones(len(points))] @ params.matrix(resolution).T
        np.testing.assert_allclose(homogeneous[:, :2], crop, atol=1e-9)
    # The square's corners map to the crop's corners.
    x0, y0 = params.corner_px
    corners = [[x0, y0], [x0 + params.side_px, y0 + params.side_px]]
    np.testing.assert_allclose(params.to_crop(corners, 256), [[0, 0], [256, 256]])
    with pytest.raises(ValueError):
        crop_params((10, 10, 5, 20), (640, 480))


@pytest.mark.parametrize(
    "box, resolution",
    [((500, 700, 1500, 2700), 256), ((900, 900, 1000, 1000), 256), ((-50, 100, 400, 600), 128)],
    ids=["shrink-10x", "enlarge-2x", "past-the-border"],
)
def test_crop_image_follows_the_mapping(box, resolution):
    """A ramp image whose value is the pixel centre's coordinate: cropping must reproduce to_full."""
    height, width = 3000, 2000
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    ramp = np.stack([cols + 0.5, rows + 0.5], axis=-1)
    params = crop_params(box, (width, height))
    out = crop_image(ramp, params, resolution)
    assert out.shape == (resolution, resolution, 2) and out.dtype == np.float32
    centres = np.stack(np.meshgrid(np.arange(resolution), np.arange(resolution)), axis=-1) + 0.5
    full = params.to_full(centres, resolution)
    margin = 4 * params.side_px / resolution
    x, y = full[..., 0], full[..., 1]
    interior = (x > margin) & (x < width - margin) & (y > margin) & (y < height - margin)
    crop_pixel = params.side_px / resolution
    assert np.abs(out[interior] - full[interior]).max() < 0.05 * crop_pixel + 0.02
    outside = (full[..., 0] < -1) | (full[..., 1] < -1)
    assert (out[outside] == 0).all()


def test_crop_rgb_and_mask_of_detection(lunge):
    image, det = lunge
    params = crop_params(det.person_box_px, det.image_size)
    rgb = crop_image(image.rgb, params, 256)
    mask = crop_image(det.mask, params, 256)
    assert rgb.shape == (256, 256, 3) and rgb.dtype == np.uint8
    assert mask.shape == (256, 256) and mask.dtype == np.float32 and 0 <= mask.min() and mask.max() <= 1
    # Keypoints mapped into the crop land on the cropped mask.
    kp = np.rint(params.to_crop(det.keypoints_px[det.seen], 256) - 0.5).astype(int)
    assert ((kp >= 0) & (kp < 256)).all()
    assert (mask[kp[:, 1], kp[:, 0]] > 0.3).mean() > 0.8
    # The person fills the padded square: the crop's mask covers a fair share.
    assert 0.15 < (mask > 0.5).mean() < 0.8


# -------------------------------------------------------------------------------------- landmark helpers


def test_unseen_parts_vocabulary():
    seen = np.ones(33, bool)
    assert unseen_parts(seen) == ()
    seen[list(BODY_PARTS["left_leg"]) + list(BODY_PARTS["right_leg"]) + list(BODY_PARTS["left_foot"])] = False
    assert unseen_parts(seen) == ("legs", "left_foot")
    seen[NAME["left_hip"]] = False  # one of two hip landmarks: half seen counts as seen
    assert "hips" not in unseen_parts(seen)
    with pytest.raises(ValueError):
        unseen_parts(np.ones(17, bool))


def test_world_conversion_is_a_proper_rotation():
    m = MEDIAPIPE_WORLD_TO_BLENDER.astype(np.float64)
    np.testing.assert_allclose(m @ m.T, np.eye(3), atol=0)
    assert np.linalg.det(m) == pytest.approx(1.0)
    # MediaPipe "down" is Blender -Z; MediaPipe "away from the camera" is Blender +Y.
    np.testing.assert_array_equal(m @ [0, 1, 0], [0, 0, -1])
    np.testing.assert_array_equal(m @ [0, 0, 1], [0, 1, 0])


# ------------------------------------------------------------------------- big photos: bounded decoding


def _photo_like(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """The lunge photo stretched onto a ``size`` canvas (photo-like content, cheap to make)."""
    photo = Image.open(real_photo("lunge.jpg")).convert(mode)
    return photo.resize(size, Image.Resampling.NEAREST)


def test_48_megapixel_jpeg_decodes_in_bounded_memory(tmp_path):
    """Phone photos go up to 48 MP: decoded by the JPEG decoder at 1/4 scale, then shrunk to 1536 px."""
    path = tmp_path / "48mp.jpg"
    _photo_like((6000, 8000)).save(path, quality=85)
    peak_mib, seconds, size, original = decode_in_child(path)
    assert original == (6000, 8000) and size == (1152, 1536)
    assert peak_mib <= 400, f"decoding a 48 MP JPEG raised peak RSS by {peak_mib:.0f} MiB"


def test_6300_square_rgba_png_decodes_in_bounded_memory(tmp_path):
    """A PNG cannot be decoded at a lower scale: its full-size buffer (159 MB here) is the one big allocation;
    conversion and reduction run in strips."""
    path = tmp_path / "6300.png"
    canvas = Image.new("RGBA", (6300, 6300), (30, 60, 90, 200))
    canvas.paste(_photo_like((2000, 3000), "RGBA"), (2000, 1500))
    canvas.save(path, compress_level=1)
    del canvas
    peak_mib, seconds, size, original = decode_in_child(path)
    assert original == (6300, 6300) and size == (1536, 1536)
    assert peak_mib <= 400, f"decoding a 6300x6300 RGBA PNG raised peak RSS by {peak_mib:.0f} MiB"


def test_working_resolution_keeps_the_photo_size_and_orientation():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (2000, 3000, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90, exif=exif.tobytes())
    image = load_image(buffer.getvalue())
    assert image.size == (1024, 1536) and image.rgb.shape == (1536, 1024, 3) and image.rgb.flags["C_CONTIGUOUS"]
    assert image.original_size == (2000, 3000) and image.orientation == 6
    assert image.scale == pytest.approx((1024 / 2000, 1536 / 3000))
    full = load_image(buffer.getvalue(), max_side=None)
    assert full.size == full.original_size == (2000, 3000) and full.scale == (1.0, 1.0)
    # The downscaled image is the full one, shrunk (JPEG draft decoding differs by a few levels at most).
    shrunk = np.asarray(Image.fromarray(full.rgb).resize((1024, 1536), Image.Resampling.BILINEAR), np.int16)
    assert np.abs(shrunk - image.rgb).mean() < 6.0
    # Other formats and arrays take the strip path; small photos are untouched.
    rgba = np.dstack([pixels, np.full(pixels.shape[:2], 255, np.uint8)])
    from_png = load_image(_png_bytes(Image.fromarray(rgba, "RGBA")))
    from_array = load_image(pixels)
    assert from_png.size == from_array.size == (1536, 1024) and from_array.original_size == (3000, 2000)
    assert np.abs(from_png.rgb.astype(np.int16) - from_array.rgb).max() <= 2
    small = load_image(pixels[:100, :150])
    assert small.size == small.original_size == (150, 100)
    np.testing.assert_array_equal(small.rgb, pixels[:100, :150])


def test_what_cannot_be_decoded_within_the_bound_is_refused(monkeypatch):
    from munet.detect import image_io

    png = _png_bytes(Image.new("RGBA", (1000, 1000)))
    monkeypatch.setattr(image_io, "DECODE_BUDGET_BYTES", 3_000_000)
    with pytest.raises(ImageTooLargeError, match="MiB to decode") as info:
        load_image(png)
    assert info.value.code == "image_too_large"
    assert load_image(_png_bytes(Image.new("L", (1000, 1000)))).size == (1000, 1000)  # 1 byte per pixel fits
    monkeypatch.undo()
    # A 48 MP JPEG decodes at 1/2 scale (12 MP): within the 40 MP limit; the same as a PNG is refused.
    jpeg = io.BytesIO()
    Image.new("RGB", (8000, 6000)).save(jpeg, format="JPEG")
    assert load_image(jpeg.getvalue()).original_size == (8000, 6000)
    with pytest.raises(ImageTooLargeError, match="pixels"):
        load_image(jpeg.getvalue(), max_side=None)


@pytest.mark.slow
def test_24_megapixel_photo_costs_at_most_1_3x_a_1_megapixel_one(tmp_path):
    """The pipeline sees at most 1536 px on the long side, so a 24 MP phone photo costs about what a small one
    does; its camera comes back in the photo's own pixels. Cost is the process's CPU time (all its threads), so
    other jobs on a shared machine do not decide the ratio (wall time under a 2-process training: 1.27-1.38;
    CPU time: 1.12; alone both ~1.2)."""
    import statistics

    from munet.pipeline import default_pipeline

    photo = Image.open(real_photo("lunge.jpg")).convert("RGB")
    photos = {}
    for name, size in (("1mp", (816, 1224)), ("24mp", (4016, 6016))):
        buffer = io.BytesIO()
        photo.resize(size, Image.Resampling.BILINEAR).save(buffer, format="JPEG", quality=90)
        photos[name] = buffer.getvalue()
    pipeline = default_pipeline()
    pipeline.reconstruct(photos["1mp"])  # warm: lazily loaded parts
    seconds: dict[str, list[float]] = {"1mp": [], "24mp": []}
    for _ in range(3):
        for name, data in photos.items():
            started = time.process_time()
            reconstruction = pipeline.reconstruct(data)
            seconds[name].append(time.process_time() - started)
    ratio = statistics.median(seconds["24mp"]) / statistics.median(seconds["1mp"])
    assert ratio <= 1.3, f"24 MP / 1 MP pipeline CPU time {ratio:.2f} ({seconds})"
    camera = reconstruction.camera
    assert camera.image_size == (4016, 6016) and reconstruction.report.image.width == 4016
    assert camera.principal_point_px == pytest.approx((2008, 3008), rel=0.02)
