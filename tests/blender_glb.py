"""Helpers for tests that re-import our GLBs in headless Blender (bpy) and pose them."""

from __future__ import annotations

import numpy as np


def import_glb(bpy, path):
    """Empty the scene, import ``path``; returns (armature objects, {name: skinned mesh object})."""
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.ops.import_scene.gltf(filepath=str(path))
    armatures = [o for o in bpy.data.objects if o.type == "ARMATURE"]
    meshes = {o.name: o for o in bpy.data.objects if o.type == "MESH" and o.vertex_groups}
    return armatures, meshes


def evaluated_vertices(bpy, obj) -> np.ndarray:
    """(V, 3) float32 vertex positions after modifiers (the armature's deformation)."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    mesh = obj.evaluated_get(depsgraph).to_mesh()
    out = np.empty(len(mesh.vertices) * 3, np.float32)
    mesh.vertices.foreach_get("co", out)
    obj.evaluated_get(depsgraph).to_mesh_clear()
    return out.reshape(-1, 3)


def group_members(obj, name: str, threshold: float = 0.9) -> np.ndarray:
    """Indices of the vertices whose weight in vertex group ``name`` exceeds ``threshold``."""
    index = obj.vertex_groups[name].index
    return np.array([v.index for v in obj.data.vertices for g in v.groups if g.group == index and g.weight > threshold])
