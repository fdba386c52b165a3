"""Motion onto the character (bpy side): find the selected character, read its rig, load an SMPL ``.npz``
or a BVH (through Blender's bundled importer), and write the retargeted motion as a new Action.

The maths lives in ``motion`` and ``kinematics`` (numpy); here only what needs Blender.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
import time

import bpy
import numpy as np

from . import kinematics as kin
from . import motion as mo
from .errors import AddonError
from .scene import STAND_PROPERTY, TPOSE_PROPERTY


@dataclasses.dataclass
class Applied:
    """What ``apply_motion`` made: the action, its first and last frame, and how long it took (seconds)."""

    action: bpy.types.Action
    frame_start: int
    frame_end: int
    seconds: float


def character_armature(context) -> bpy.types.Object:
    """The armature of the selected character: the active object if it is an armature, else the armature a
    selected mesh is parented or deformed by."""
    candidates = [context.active_object] + list(getattr(context, "selected_objects", []) or [])
    for obj in candidates:
        if obj is None:
            continue
        if obj.type == "ARMATURE":
            return obj
        if obj.type == "MESH":
            if obj.parent is not None and obj.parent.type == "ARMATURE":
                return obj.parent
            for mod in obj.modifiers:
                if mod.type == "ARMATURE" and mod.object is not None:
                    return mod.object
    raise AddonError("select the character (its armature, or its Body or Clothed mesh) first", code="no_character")


def character_meshes(arm: bpy.types.Object) -> list:
    """The meshes the armature deforms (its Body and Clothed)."""
    return [o for o in bpy.data.objects if o.type == "MESH" and any(
        m.type == "ARMATURE" and m.object == arm for m in o.modifiers)]


def rig(arm: bpy.types.Object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(24, 3) rest joints (armature space, metres), (24, 3, 3) rotations from the rest to the T-pose and
    (24, 3) the joints standing on the floor (the body model's rest; the rest joints when not stored)."""
    missing = [n for n in kin.SMPL24 if n not in arm.data.bones]
    if missing:
        raise AddonError(f"motions need the SMPL 24 skeleton; {arm.name} has no bone {', '.join(missing[:4])} "
                         "(reconstruct with Skeleton: SMPL 24)", code="motion")
    rest = np.array([arm.data.bones[n].head_local for n in kin.SMPL24], np.float64)
    stored = arm.get(TPOSE_PROPERTY)
    if stored is not None and len(stored) == 24 * 9:
        to_tpose = np.asarray(stored, np.float64).reshape(24, 3, 3)
    else:  # an armature we did not build, or built before the property existed: assume the bones' own rest
        to_tpose = kin.tpose_globals(rest, kin.SMPL24, kin.SMPL24_PARENTS)
    stand = arm.get(STAND_PROPERTY)
    stand = np.asarray(stand, np.float64).reshape(24, 3) if stand is not None and len(stand) == 72 else rest
    return rest, to_tpose, stand


def load(context, path: pathlib.Path) -> mo.Motion:
    suffix = path.suffix.lower()
    if not path.is_file():
        raise AddonError(f"the motion file {path} does not exist", code="motion")
    if suffix == ".npz":
        return mo.load_npz(path)
    if suffix == ".bvh":
        return load_bvh(context, path)
    raise AddonError(f"{path.name}: choose an SMPL/AMASS .npz or a .bvh motion", code="motion")


def apply_motion(context, filepath, arm: bpy.types.Object | None = None, set_frame_range: bool = True) -> Applied:
    """Load ``filepath`` and put it on the character as a new Action at the scene's frame rate, from the
    scene's start frame; ``set_frame_range`` makes the scene's end frame the motion's last."""
    start = time.perf_counter()
    arm = arm or character_armature(context)
    rest, to_tpose, stand = rig(arm)
    path = pathlib.Path(bpy.path.abspath(str(filepath)))
    scene = context.scene
    motion = mo.resample(load(context, path), scene.render.fps / scene.render.fps_base)
    rotations, offsets = mo.retarget(motion, rest, to_tpose, stand)
    if not (np.isfinite(rotations).all() and np.isfinite(offsets).all()):
        raise AddonError(f"{path.name} gave NaN rotations on this character", code="motion")
    first = scene.frame_start
    action = write_action(arm, motion.name, rotations, offsets, first)
    last = first + motion.num_frames - 1
    if set_frame_range:
        scene.frame_end = last
    scene.frame_set(first)
    return Applied(action, first, last, time.perf_counter() - start)


def write_action(arm: bpy.types.Object, name: str, rotations: np.ndarray, offsets: np.ndarray,
                 first_frame: int) -> bpy.types.Action:
    """A new Action on ``arm``: (T, 24, 3, 3) world-aligned rotations per bone and (T, 3) pelvis offsets
    (armature space), one key per frame from ``first_frame``; the bones turn to quaternion rotation."""
    T = len(rotations)
    B = np.array([np.array(arm.data.bones[n].matrix_local.to_3x3()) for n in kin.SMPL24])   # (24, 3, 3)
    local = np.swapaxes(B, -1, -2)[None] @ rotations @ B[None]
    quats = kin.continuous_quaternions(kin.matrix_to_quaternion(local))                      # (T, 24, 4)
    location = offsets @ B[0]                                                                # B_0^T d per frame
    action = bpy.data.actions.new(name)
    slot = action.slots.new(id_type="OBJECT", name=arm.name)
    strip = action.layers.new("Layer").strips.new(type="KEYFRAME")
    bag = strip.channelbag(slot, ensure=True)
    frames = np.arange(first_frame, first_frame + T, dtype=np.float32)

    def curve(bone, prop, index, values):
        fc = bag.fcurves.new(f'pose.bones["{bone}"].{prop}', index=index, group_name=bone)
        fc.keyframe_points.add(T)
        fc.keyframe_points.foreach_set("co", np.stack([frames, values.astype(np.float32)], 1).ravel())
        fc.keyframe_points.foreach_set("interpolation", np.ones(T, np.int32))  # LINEAR: dense samples
        fc.update()

    for j, bone in enumerate(kin.SMPL24):
        arm.pose.bones[bone].rotation_mode = "QUATERNION"
        for k in range(4):
            curve(bone, "rotation_quaternion", k, quats[:, j, k])
    for k in range(3):
        curve(kin.SMPL24[0], "location", k, location[:, k])
    if arm.animation_data is None:
        arm.animation_data_create()
    arm.animation_data.action = action
    arm.animation_data.action_slot = slot
    return action


# ---------------------------------------------------------------------------------------------------
# BVH through Blender's importer


def bvh_frame_rate(path: pathlib.Path) -> float:
    """Frames per second from the BVH's ``Frame Time:`` line."""
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            found = re.match(r"\s*Frame Time:\s*([0-9.eE+-]+)", line)
            if found and float(found.group(1)) > 0:
                return 1.0 / float(found.group(1))
    raise AddonError(f"{path.name} is not a BVH motion (no 'Frame Time:' line)", code="motion")


def load_bvh(context, path: pathlib.Path) -> mo.Motion:
    """Import the BVH with Blender's importer into a temporary armature, sample it, delete it."""
    fps = bvh_frame_rate(path)
    view_layer = context.view_layer
    active, selected = view_layer.objects.active, [o for o in view_layer.objects if o.select_get()]
    mode = active.mode if active is not None else "OBJECT"
    if mode != "OBJECT":  # the importer adds an object: leave Pose or Edit mode meanwhile
        bpy.ops.object.mode_set(mode="OBJECT")
    before = {"objects": set(bpy.data.objects), "armatures": set(bpy.data.armatures), "actions": set(bpy.data.actions)}
    try:
        bpy.ops.import_anim.bvh(filepath=str(path), rotate_mode="QUATERNION", use_fps_scale=False,
                                update_scene_fps=False, update_scene_duration=False, use_cyclic=False)
    except RuntimeError as e:
        raise AddonError(f"Blender's BVH importer could not read {path.name}: {e}", code="motion")
    try:
        new = [o for o in bpy.data.objects if o not in before["objects"] and o.type == "ARMATURE"]
        if not new:
            raise AddonError(f"{path.name} holds no skeleton", code="motion")
        return mo.skeleton_motion(path.stem, *sample_armature(new[0]), fps=fps)
    finally:
        for kind in ("objects", "armatures", "actions"):
            store = getattr(bpy.data, kind)
            for item in [i for i in store if i not in before[kind]]:
                store.remove(item)
        for obj in view_layer.objects:
            obj.select_set(obj in selected)
        view_layer.objects.active = active
        if mode != "OBJECT":
            bpy.ops.object.mode_set(mode=mode)


def sample_armature(obj: bpy.types.Object):
    """(names, parents, rest heads (B, 3), rest rotations (B, 3, 3), rotations per frame (T, B, 3, 3), mapped
    pelvis head per frame (T, 3)) of an imported armature, world frame, from its action's curves (no scene
    evaluation: our character is not deformed once per frame)."""
    bones = list(obj.data.bones)
    names = [b.name for b in bones]
    parents = [names.index(b.parent.name) if b.parent else -1 for b in bones]
    rest = np.array([np.array(b.matrix_local) for b in bones])                             # (B, 4, 4)
    world = np.array(obj.matrix_world)
    world_rot = world[:3, :3] / np.linalg.norm(world[:3, :3], axis=0, keepdims=True)
    anim = obj.animation_data
    bag = None
    if anim is not None and anim.action is not None:
        from bpy_extras import anim_utils

        bag = anim_utils.action_get_channelbag_for_slot(anim.action, anim.action_slot)
    curves = {(fc.data_path, fc.array_index): fc for fc in (bag.fcurves if bag else [])}
    start, end = (int(round(v)) for v in (anim.action.frame_range if bag else (1, 1)))
    frames = np.arange(start, end + 1)
    basis = np.tile(np.eye(4), (len(frames), len(bones), 1, 1))
    for b, name in enumerate(names):
        q = np.array([[_value(curves, name, "rotation_quaternion", k, f, 1.0 if k == 0 else 0.0) for k in range(4)]
                      for f in frames])
        loc = np.array([[_value(curves, name, "location", k, f, 0.0) for k in range(3)] for f in frames])
        basis[:, b, :3, :3] = kin.quaternion_to_matrix(q)
        basis[:, b, :3, 3] = loc
    pose = np.zeros_like(basis)
    for b, p in enumerate(parents):
        offset = rest[b] if p < 0 else np.linalg.inv(rest[p]) @ rest[b]
        pose[:, b] = (offset[None] if p < 0 else pose[:, p] @ offset[None]) @ basis[:, b]
    heads = rest[:, :3, 3] @ world[:3, :3].T + world[:3, 3]
    rest_rot = world_rot[None] @ rest[:, :3, :3]
    rotations = world_rot[None, None] @ pose[:, :, :3, :3]
    pelvis = mo.map_bone_names(names, parents)["pelvis"]
    root = pose[:, pelvis, :3, 3] @ world[:3, :3].T + world[:3, 3]
    return names, parents, heads, rest_rot, rotations, root


def _value(curves: dict, bone: str, prop: str, index: int, frame: float, default: float) -> float:
    fc = curves.get((f'pose.bones["{bone}"].{prop}', index))
    return fc.evaluate(frame) if fc is not None else default
