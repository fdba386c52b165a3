"""Write a ``Reconstruction`` as a skinned GLB (one armature, ``Body`` and ``Clothed``), OBJ or NPZ.

GLB details:

* glTF is Y up, ours is Blender's Z up: positions go through ``(x, y, z) -> (x, z, -y)``; Blender's
  importer undoes it.
* Joint nodes carry the reconstructed pose (local rotation + offset from the parent); the bind pose
  is the rest pose, whose joint frames are world-aligned, so each inverse bind matrix is a pure
  translation. Meshes store rest-pose vertices; importers pose them through the skin.
* All influences are kept (``JOINTS_0/WEIGHTS_0`` and ``JOINTS_1/WEIGHTS_1`` for up to 8).
  Blender must import with ``export_all_influences``'s counterpart on by default (it is).
* The texture (when present) is embedded; per-corner UVs are unwelded into per-vertex UVs.
"""

from __future__ import annotations

import json
import os
import struct

import numpy as np

from munet.reconstruction import Reconstruction, SkinnedSurface

_TO_GLTF = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # p_gltf = C @ p_blender
_FLOAT, _UINT, _USHORT = 5126, 5125, 5123
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963


def _quaternion_xyzw(rotation: np.ndarray) -> list[float]:
    from scipy.spatial.transform import Rotation

    return Rotation.from_matrix(rotation).as_quat().tolist()  # (x, y, z, w), glTF order


class _GlbBuilder:
    """Accumulates buffer views/accessors into one binary chunk."""

    def __init__(self):
        self.blob = bytearray()
        self.gltf: dict = {"asset": {"version": "2.0", "generator": "munet"}, "bufferViews": [], "accessors": []}

    def view(self, data: bytes, target: int | None = None) -> int:
        while len(self.blob) % 4:
            self.blob.append(0)
        view = {"buffer": 0, "byteOffset": len(self.blob), "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        self.blob.extend(data)
        self.gltf["bufferViews"].append(view)
        return len(self.gltf["bufferViews"]) - 1

    def accessor(self, array: np.ndarray, kind: str, component: int, target: int | None = None,
                 with_bounds: bool = False) -> int:
        array = np.ascontiguousarray(array)
        accessor = {"bufferView": self.view(array.tobytes(), target), "componentType": component,
                    "count": int(array.shape[0]), "type": kind}
        if with_bounds:
            accessor["min"] = array.min(0).tolist()
            accessor["max"] = array.max(0).tolist()
        self.gltf["accessors"].append(accessor)
        return len(self.gltf["accessors"]) - 1

    def write(self, path: str | os.PathLike) -> None:
        while len(self.blob) % 4:
            self.blob.append(0)
        self.gltf["buffers"] = [{"byteLength": len(self.blob)}]
        text = json.dumps(self.gltf, separators=(",", ":")).encode()
        text += b" " * (-len(text) % 4)
        total = 12 + 8 + len(text) + 8 + len(self.blob)
        tmp = f"{os.fspath(path)}.tmp"
        with open(tmp, "wb") as f:
            f.write(struct.pack("<4sII", b"glTF", 2, total))
            f.write(struct.pack("<I4s", len(text), b"JSON") + text)
            f.write(struct.pack("<I4s", len(self.blob), b"BIN\0") + bytes(self.blob))
        os.replace(tmp, path)  # never leave a half-written file at the destination


def _unweld(surface: SkinnedSurface) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Per-vertex arrays for glTF: (source vertex index per output vertex, faces, uv or None)."""
    faces = surface.faces.astype(np.int64)
    if surface.uv_per_corner is None:
        return np.arange(len(surface.rest_vertices_m)), faces, None
    corners_vertex = faces.reshape(-1)
    corners_uv = surface.uv_per_corner.reshape(-1, 2).astype(np.float32)
    key = np.concatenate([corners_vertex[:, None].astype(np.float64), np.round(corners_uv * 1e6)], axis=1)
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    return corners_vertex[first], inverse.reshape(-1, 3), corners_uv[first]


def _add_mesh(builder: _GlbBuilder, name: str, surface: SkinnedSurface, material: int | None) -> int:
    source, faces, uv = _unweld(surface)
    positions = (surface.rest_vertices_m[source] @ _TO_GLTF.T).astype(np.float32)
    attributes = {"POSITION": builder.accessor(positions, "VEC3", _FLOAT, _ARRAY_BUFFER, with_bounds=True)}
    joints = surface.skin.joint_indices[source]
    weights = surface.skin.weights[source]
    influences = joints.shape[1]
    pad = -influences % 4
    joints = np.pad(joints, ((0, 0), (0, pad))).astype(np.uint16)
    weights = np.pad(weights, ((0, 0), (0, pad))).astype(np.float32)
    for k in range(joints.shape[1] // 4):
        attributes[f"JOINTS_{k}"] = builder.accessor(joints[:, 4 * k : 4 * k + 4], "VEC4", _USHORT, _ARRAY_BUFFER)
        attributes[f"WEIGHTS_{k}"] = builder.accessor(weights[:, 4 * k : 4 * k + 4], "VEC4", _FLOAT, _ARRAY_BUFFER)
    if uv is not None:
        uv_gltf = np.stack([uv[:, 0], 1.0 - uv[:, 1]], axis=1).astype(np.float32)  # glTF: v down
        attributes["TEXCOORD_0"] = builder.accessor(uv_gltf, "VEC2", _FLOAT, _ARRAY_BUFFER)
    indices = builder.accessor(faces.reshape(-1).astype(np.uint32), "SCALAR", _UINT, _ELEMENT_ARRAY_BUFFER)
    primitive = {"attributes": attributes, "indices": indices, "mode": 4}
    if material is not None:
        primitive["material"] = material
    builder.gltf.setdefault("meshes", []).append({"name": name, "primitives": [primitive]})
    return len(builder.gltf["meshes"]) - 1


def write_glb(reconstruction: Reconstruction, path: str | os.PathLike) -> None:
    """One armature (the skeleton, posed), ``Body`` and ``Clothed`` skinned to it, texture embedded."""
    from munet.geometry.rotations import axis_angle_to_matrix_np

    r = reconstruction
    builder = _GlbBuilder()
    gltf = builder.gltf
    skeleton = r.skeleton
    rest_joints = skeleton.rest_joints_m.astype(np.float64)
    nodes: list[dict] = []
    for j, name in enumerate(skeleton.joint_names):
        parent = int(skeleton.parents[j])
        offset = rest_joints[j] - (rest_joints[parent] if parent >= 0 else 0.0)
        if parent < 0:
            offset = offset + r.root_translation_m
        rotation = _TO_GLTF @ axis_angle_to_matrix_np(r.pose_axis_angle[j]) @ _TO_GLTF.T
        nodes.append({"name": name, "translation": (_TO_GLTF @ offset).tolist(), "rotation": _quaternion_xyzw(rotation)})
    for j, parent in enumerate(skeleton.parents):
        if parent >= 0:
            nodes[int(parent)].setdefault("children", []).append(j)
    inverse_bind = np.tile(np.eye(4, dtype=np.float32), (skeleton.num_joints, 1, 1))
    inverse_bind[:, :3, 3] = -(rest_joints @ _TO_GLTF.T)
    inverse_bind_accessor = builder.accessor(inverse_bind.transpose(0, 2, 1).reshape(-1, 16), "MAT4", _FLOAT)
    gltf["skins"] = [{"name": "Armature", "joints": list(range(skeleton.num_joints)), "skeleton": 0,
                      "inverseBindMatrices": inverse_bind_accessor}]

    material = None
    if r.texture is not None:
        image_view = builder.view(r.texture.image_bytes)
        gltf["images"] = [{"name": "photo", "bufferView": image_view, "mimeType": r.texture.mime_type}]
        gltf["samplers"] = [{"magFilter": 9729, "minFilter": 9729}]
        gltf["textures"] = [{"source": 0, "sampler": 0}]
        gltf["materials"] = [{"name": "Photo", "pbrMetallicRoughness": {
            "baseColorTexture": {"index": 0}, "metallicFactor": 0.0, "roughnessFactor": 0.8}}]
        material = 0
    surfaces = [("Body", r.body)] + ([("Clothed", r.clothed)] if r.clothed is not None else [])
    mesh_nodes = []
    for name, surface in surfaces:
        uses_texture = material is not None and surface.uv_per_corner is not None
        mesh = _add_mesh(builder, name, surface, material if uses_texture else None)
        nodes.append({"name": name, "mesh": mesh, "skin": 0})
        mesh_nodes.append(len(nodes) - 1)
    gltf["nodes"] = nodes
    gltf["scenes"] = [{"name": "MuNet", "nodes": [0] + mesh_nodes}]
    gltf["scene"] = 0
    builder.write(path)


def write_obj(reconstruction: Reconstruction, path_stem: str | os.PathLike) -> list[str]:
    """Posed ``<stem>_body.obj`` and ``<stem>_clothed.obj`` (world frame, metres, Z up)."""
    import trimesh

    written = []
    surfaces = [("body", reconstruction.body), ("clothed", reconstruction.clothed)]
    for name, surface in surfaces:
        if surface is None:
            continue
        path = f"{os.fspath(path_stem)}_{name}.obj"
        mesh = trimesh.Trimesh(surface.posed_vertices_m, surface.faces, process=False)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(trimesh.exchange.obj.export_obj(mesh, include_normals=False, include_texture=False))
        os.replace(tmp, path)
        written.append(path)
    return written


def write_npz(reconstruction: Reconstruction, path: str | os.PathLike) -> None:
    """Every array of the reconstruction, plus the report as JSON text."""
    r = reconstruction
    arrays = {
        "pose_axis_angle": r.pose_axis_angle, "root_translation_m": r.root_translation_m, "shape": r.shape,
        "joint_names": np.array(r.skeleton.joint_names), "parents": r.skeleton.parents,
        "rest_joints_m": r.skeleton.rest_joints_m,
        "K_pixels": r.camera.K_pixels(), "R_world_to_cam": r.camera.R_world_to_cam,
        "t_world_to_cam_m": r.camera.t_world_to_cam_m, "image_size": np.array(r.camera.image_size),
        "report_json": np.array(json.dumps(r.report.to_json())),
    }  # fmt: skip
    for name, surface in (("body", r.body), ("clothed", r.clothed)):
        if surface is None:
            continue
        arrays.update({
            f"{name}_rest_vertices_m": surface.rest_vertices_m, f"{name}_posed_vertices_m": surface.posed_vertices_m,
            f"{name}_faces": surface.faces, f"{name}_skin_joint_indices": surface.skin.joint_indices,
            f"{name}_skin_weights": surface.skin.weights,
        })  # fmt: skip
    tmp = f"{os.fspath(path)}.tmp.npz"
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)
