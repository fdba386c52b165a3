"""The skinned GLB survives a round trip through real Blender (bpy)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from blender_glb import evaluated_vertices, group_members, import_glb

from munet.body.skeleton import SMPL24_JOINTS

bpy = pytest.importorskip("bpy")


def test_body_demo_glb_round_trip(tmp_path):
    glb = tmp_path / "body.glb"
    result = subprocess.run([sys.executable, "-m", "backend.cli", "body-demo", "-o", str(glb)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    armatures, meshes = import_glb(bpy, glb)
    assert len(armatures) == 1
    armature = armatures[0]
    assert sorted(b.name for b in armature.data.bones) == sorted(SMPL24_JOINTS)
    body = meshes["Body"]
    assert len(body.vertex_groups) == 24 and any(m.type == "ARMATURE" for m in body.modifiers)

    before = evaluated_vertices(bpy, body)
    bone = armature.pose.bones["left_elbow"]
    bone.rotation_mode = "XYZ"
    bone.rotation_euler = (1.0, 0.3, 0.0)
    bpy.context.view_layer.update()
    after = evaluated_vertices(bpy, body)
    moved = np.linalg.norm(after - before, axis=1)
    left = group_members(body, "left_elbow")
    right = group_members(body, "right_elbow")
    assert len(left) > 100 and len(right) > 100
    assert moved[left].mean() > 0.03, "left forearm follows the rotated bone"
    assert moved[right].max() < 1e-5, "right forearm stays"
