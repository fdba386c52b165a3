"""`munet reconstruct`: outputs, exit codes for every bad input, batch folders, and the GLB in real Blender.

The command runs in-process (``backend.cli.main``) so it reuses the process-wide pipeline that the other
pipeline tests loaded."""

from __future__ import annotations

import io
import json
import shutil
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from backend.cli import main
from photos import real_photo


def _png(width: int, height: int, value: int = 200) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), value, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares width x height pixels."""
    data = _png(8, 8)
    ihdr = struct.pack(">II", width, height) + data[24:29]
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    return data[:16] + ihdr + crc + data[33:]


@pytest.fixture(scope="module")
def lunge_outputs(tmp_path_factory):
    out = tmp_path_factory.mktemp("lunge")
    code = main(["reconstruct", str(real_photo("lunge.jpg")), "-o", str(out / "lunge.glb"), "--report", str(out / "lunge.json"),
                 "--preview", str(out / "preview.png"), "--obj", str(out / "lunge"), "--npz", str(out / "lunge.npz")])
    assert code == 0
    return out


def test_reconstruct_writes_every_output(lunge_outputs):
    out = lunge_outputs
    for name in ("lunge.glb", "lunge.json", "preview.png", "lunge_body.obj", "lunge_clothed.obj", "lunge.npz"):
        assert (out / name).stat().st_size > 0, name
    report = json.loads((out / "lunge.json").read_text())
    assert report["timings_ms"]["export"] > 0
    assert report["timings_ms"]["total"] >= report["timings_ms"]["export"]
    preview = Image.open(out / "preview.png")
    assert preview.size[0] > 2 * preview.size[1]  # overlay + side view + top view
    with np.load(out / "lunge.npz") as npz:
        assert npz["pose_axis_angle"].shape == (24, 3)


@pytest.mark.parametrize(
    ("case", "code"),
    [("not_an_image", 3), ("empty", 3), ("bomb", 3), ("missing", 3), ("no_person", 4), ("bad_option", 2),
     ("checkpoint", 7), ("smpl_missing", 5)],
)
def test_exit_codes(case, code, tmp_path, monkeypatch, capsys):
    photo = tmp_path / "photo.png"
    extra: list[str] = []
    if case == "not_an_image":
        photo.write_text("this is not a photo")
    elif case == "empty":
        photo.write_bytes(b"")
    elif case == "bomb":
        photo.write_bytes(_bomb_png(100_000, 100_000))
    elif case == "missing":
        photo = tmp_path / "nowhere.jpg"
    elif case == "no_person":
        photo.write_bytes(_png(320, 240))
    else:
        photo = real_photo("grace_hopper.jpg")
        if case == "bad_option":
            extra = ["--refine-iterations", "-1"]
        elif case == "checkpoint":
            extra = ["--checkpoint", str(tmp_path / "model.safetensors")]
        else:
            monkeypatch.delenv("MUNET_SMPL_DIR", raising=False)
            extra = ["--body-model", "smpl", "--smpl-dir", str(tmp_path)]
    assert main(["reconstruct", str(photo), "-o", str(tmp_path / "out.glb"), *extra]) == code
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.startswith("munet reconstruct: error [")  # one line naming the problem
    assert not (tmp_path / "out.glb").exists()


def test_batch_folder_goes_on_after_a_failure(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(real_photo("grace_hopper.jpg"), photos / "a_grace.jpg")
    (photos / "b_broken.jpg").write_text("not a photo")
    (photos / "c_nobody.png").write_bytes(_png(320, 240))
    (photos / "notes.txt").write_text("ignored")
    out = tmp_path / "out"
    code = main(["reconstruct", str(photos), "-o", str(out)])
    assert code == 3  # the first failure's code; the rest still ran
    summary = json.loads((out / "summary.json").read_text())
    assert [s["ok"] for s in summary] == [True, False, False]
    assert [s.get("code") for s in summary[1:]] == ["bad_image", "no_person_found"]
    assert (out / "a_grace.glb").exists() and (out / "a_grace.json").exists()
    assert not (out / "b_broken.glb").exists()
    assert "1 of 3 photos" in capsys.readouterr().out


@pytest.mark.blender
def test_glb_round_trip_in_blender(lunge_outputs):
    """Rotating left_elbow moves the left forearm of both Body and Clothed, and not the right one."""
    bpy = pytest.importorskip("bpy")
    from blender_glb import evaluated_vertices, group_members, import_glb

    armatures, meshes = import_glb(bpy, lunge_outputs / "lunge.glb")
    assert len(armatures) == 1 and {"Body", "Clothed"} <= set(meshes)
    armature = armatures[0]

    before = {name: evaluated_vertices(bpy, meshes[name]) for name in ("Body", "Clothed")}
    bone = armature.pose.bones["left_elbow"]
    bone.rotation_mode = "XYZ"
    bone.rotation_euler = (0.8, 0.3, 0.2)
    bpy.context.view_layer.update()
    for name in ("Body", "Clothed"):
        moved = np.linalg.norm(evaluated_vertices(bpy, meshes[name]) - before[name], axis=1)
        left, right = group_members(meshes[name], "left_elbow"), group_members(meshes[name], "right_elbow")
        assert len(left) > 50 and len(right) > 50
        assert moved[left].mean() > 0.03, f"{name}: the left forearm follows the bone"
        assert moved[right].max() < 1e-5, f"{name}: the right forearm stays"
    assert "Photo" in bpy.data.materials  # the projected texture came along
