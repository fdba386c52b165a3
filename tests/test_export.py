"""The skinned GLB survives a round trip through real Blender (bpy)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from munet.body.skeleton import SMPL24_JOINTS

bpy = pytest.importorskip("bpy")


def _import_glb(path):
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.import_scene.gltf(filepath=str(path))
    armatures = [o for o in bpy.data.objects if o.type == "ARMATURE"]
    meshes = {o.name: o for o in bpy.data.objects if o.type == "MESH" and o.vertex_groups}
    return armatures, meshes


def _evaluated_vertices(obj):
    depsgraph = bpy.context.evaluated_depsgraph_get()
    mesh = obj.evaluated_get(depsgraph).to_mesh()
    out = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", out)
    obj.evaluated_get(depsgraph).to_mesh_clear()
    return out.reshape(-1, 3)


def _group_members(obj, name, threshold=0.9):
    index = obj.vertex_groups[name].index
    return np.array([v.index for v in obj.data.vertices for g in v.groups if g.group == index and g.weight > threshold])


def test_body_demo_glb_round_trip(tmp_path):
    glb = tmp_path / "body.glb"
    result = subprocess.run([sys.executable, "-m", "backend.cli", "body-demo", "-o", str(glb)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    armatures, meshes = _import_glb(glb)
    assert len(armatures) == 1
    armature = armatures[0]
    assert sorted(b.name for b in armature.data.bones) == sorted(SMPL24_JOINTS)
    body = meshes["Body"]
    assert len(body.vertex_groups) == 24 and any(m.type == "ARMATURE" for m in body.modifiers)

    before = _evaluated_vertices(body)
    bone = armature.pose.bones["left_elbow"]
    bone.rotation_mode = "XYZ"
    bone.rotation_euler = (1.0, 0.3, 0.0)
    bpy.context.view_layer.update()
    after = _evaluated_vertices(body)
    moved = np.linalg.norm(after - before, axis=1)
    left = _group_members(body, "left_elbow")
    right = _group_members(body, "right_elbow")
    assert len(left) > 100 and len(right) > 100
    assert moved[left].mean() > 0.03, "left forearm follows the rotated bone"
    assert moved[right].max() < 1e-5, "right forearm stays"
