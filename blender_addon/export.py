"""Export the character for other tools: FBX (Unity, Unreal) and GLB (web), with settings that survive.

FBX: the texture embedded (path mode Copy + embed), no ``_end`` leaf bones, deform bones only, the action
baked on every frame with no simplification. GLB: at most 4 influences per vertex, chosen and renormalised
here on temporary copies of the meshes (the user's meshes are never touched, and the exporter has nothing
to drop), the active action (or else the current pose) included, only the armature and its meshes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib
import time

import bpy
import numpy as np

from . import scene
from .animate import character_meshes
from .errors import AddonError

FORMATS = ("FBX", "GLB")
#: Settings per target: the format a preset exports by default, and what it changes in each exporter.
PRESETS = {
    "UNITY": {"format": "FBX", "label": "Unity", "fbx": {"apply_scale_options": "FBX_SCALE_ALL",
                                                         "axis_forward": "-Z", "axis_up": "Y"}},
    "UNREAL": {"format": "FBX", "label": "Unreal", "fbx": {"apply_scale_options": "FBX_SCALE_NONE",
                                                           "axis_forward": "-Z", "axis_up": "Y"}},
    "WEB": {"format": "GLB", "label": "Web (three.js, Babylon, model-viewer)", "fbx": {}},
}
MAX_INFLUENCES = 4


@dataclasses.dataclass
class Exported:
    path: pathlib.Path
    seconds: float


def export_character(context, arm: bpy.types.Object, filepath, fmt: str = "FBX", preset: str = "UNITY") -> Exported:
    """Write ``arm`` and the meshes it deforms to ``filepath`` (the extension follows ``fmt``)."""
    if fmt not in FORMATS:
        raise AddonError(f"unknown export format {fmt!r}: choose one of {', '.join(FORMATS)}", code="export")
    if preset not in PRESETS:
        raise AddonError(f"unknown export preset {preset!r}: choose one of {', '.join(PRESETS)}", code="export")
    start = time.perf_counter()
    path = pathlib.Path(bpy.path.abspath(str(filepath))).with_suffix("." + fmt.lower())
    path.parent.mkdir(parents=True, exist_ok=True)
    meshes = character_meshes(arm)
    if not meshes:
        raise AddonError(f"{arm.name} deforms no mesh: nothing to export", code="export")
    if context.object is not None and context.object.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    if fmt == "FBX":
        with _pose_as_action(context, arm), _selected(context, [arm] + meshes):
            _export_fbx(path, PRESETS[preset]["fbx"])
    else:
        with _pose_as_action(context, arm), _limited_copies(context, arm, meshes) as copies, \
                _selected(context, [arm] + copies):
            _export_glb(path)
    if not path.is_file():
        raise AddonError(f"the exporter wrote nothing to {path}", code="export")
    return Exported(path, time.perf_counter() - start)


def _export_fbx(path: pathlib.Path, preset: dict) -> None:
    bpy.ops.export_scene.fbx(
        filepath=str(path), use_selection=True, object_types={"ARMATURE", "MESH"}, use_mesh_modifiers=False,
        mesh_smooth_type="FACE", add_leaf_bones=False, use_armature_deform_only=True, primary_bone_axis="Y",
        secondary_bone_axis="X", path_mode="COPY", embed_textures=True, bake_anim=True,
        bake_anim_use_all_bones=True, bake_anim_use_nla_strips=False, bake_anim_use_all_actions=False,
        bake_anim_force_startend_keying=True, bake_anim_step=1.0, bake_anim_simplify_factor=0.0,
        apply_unit_scale=True, global_scale=1.0, **preset)


def _export_glb(path: pathlib.Path) -> None:
    bpy.ops.export_scene.gltf(
        filepath=str(path), export_format="GLB", use_selection=True, export_apply=False, export_skins=True,
        export_all_influences=False, export_influence_nb=MAX_INFLUENCES, export_def_bones=True,
        export_animations=True, export_animation_mode="ACTIVE_ACTIONS", export_force_sampling=True,
        export_frame_range=False, export_rest_position_armature=True, export_current_frame=False,
        export_cameras=False, export_lights=False, export_extras=False, export_yup=True,
        export_image_format="AUTO", export_materials="EXPORT")


@contextlib.contextmanager
def _pose_as_action(context, arm):
    """Without an action, the current pose as a temporary one-frame action (exporters write poses only
    through animation: without it the character comes back in its rest pose); removed afterwards."""
    if arm.animation_data is not None and arm.animation_data.action is not None:
        yield
        return
    had_data = arm.animation_data is not None
    frame = context.scene.frame_current
    for pb in arm.pose.bones:
        rotation = {"QUATERNION": "rotation_quaternion", "AXIS_ANGLE": "rotation_axis_angle"}.get(
            pb.rotation_mode, "rotation_euler")
        for prop in ("location", rotation, "scale"):
            pb.keyframe_insert(data_path=prop, frame=frame, group=pb.name)
    action = arm.animation_data.action
    action.name = f"{arm.name} pose"
    try:
        yield
    finally:
        arm.animation_data.action = None
        bpy.data.actions.remove(action)
        if not had_data:
            arm.animation_data_clear()


def limit_influences(dense: np.ndarray, limit: int = MAX_INFLUENCES) -> np.ndarray:
    """(V, J) weights keeping each vertex's ``limit`` largest, renormalised to sum 1 (rows of zeros stay)."""
    out = np.array(dense, np.float32)
    if out.shape[1] > limit:
        drop = np.argsort(-out, axis=1, kind="stable")[:, limit:]
        np.put_along_axis(out, drop, 0.0, axis=1)
    total = out.sum(1, keepdims=True)
    return np.where(total > 0, out / np.maximum(total, 1e-12), out)


def read_weights(obj: bpy.types.Object) -> tuple[list, np.ndarray]:
    """(group names, (V, G) dense weights) of a mesh object's vertex groups."""
    names = [g.name for g in obj.vertex_groups]
    dense = np.zeros((len(obj.data.vertices), len(names)), np.float32)
    for v in obj.data.vertices:
        for g in v.groups:
            dense[v.index, g.group] = g.weight
    return names, dense


@contextlib.contextmanager
def _limited_copies(context, arm, meshes):
    """Temporary copies of ``meshes`` (same names, the originals renamed meanwhile) with at most
    ``MAX_INFLUENCES`` renormalised weights; everything is removed and renamed back afterwards."""
    holder = bpy.data.collections.new("MuNet export (temporary)")
    context.scene.collection.children.link(holder)
    copies, renamed = [], []
    try:
        for obj in meshes:
            copy = obj.copy()
            copy.data = obj.data.copy()
            holder.objects.link(copy)
            names, dense = read_weights(obj)
            scene.set_vertex_groups(copy, names, limit_influences(dense))
            for item, twin in ((obj, copy), (obj.data, copy.data)):
                name = item.name
                item.name = f"{name} (exporting)"
                renamed.append((item, name))
                twin.name = name
            copies.append(copy)
        yield copies
    finally:
        for copy in copies:
            data = copy.data
            bpy.data.objects.remove(copy, do_unlink=True)
            bpy.data.meshes.remove(data)
        for item, name in renamed:
            item.name = name
        bpy.data.collections.remove(holder)


@contextlib.contextmanager
def _selected(context, objects):
    """Select exactly ``objects`` (the first active) for an exporter's ``use_selection``; restore after."""
    view_layer = context.view_layer
    active, before = view_layer.objects.active, [o for o in view_layer.objects if o.select_get()]
    try:
        for obj in view_layer.objects:
            obj.select_set(False)
        for obj in objects:
            obj.select_set(True)
        view_layer.objects.active = objects[0]
        yield
    finally:
        for obj in view_layer.objects:
            obj.select_set(obj in before)
        view_layer.objects.active = active
