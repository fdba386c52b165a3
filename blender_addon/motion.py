"""Motions in numpy (no bpy): SMPL/AMASS ``.npz`` files, BVH bone-name mapping, resampling, retargeting.

A ``Motion`` holds, per frame, the global rotation of each of SMPL's 24 joints relative to the motion's
own rest pose (world axes, Blender's frame: Z up, the person faces -Y) and the pelvis position. SMPL's
rest is a T-pose. ``retarget`` puts it on a character: it goes from the character's bind rest to its
T-pose (``to_tpose``), then onto the source's rest bone directions (BVH rest poses differ a little),
then follows the motion; the pelvis path is scaled by the ratio of leg lengths so the feet do not skate.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re

import numpy as np

from . import kinematics as kin
from .errors import AddonError

#: SMPL's mean leg length (hip to knee to ankle), metres: the scale of SMPL/AMASS root translations.
SMPL_LEG_LENGTH_M = 0.78
#: SMPL's Y-up frame (person faces +Z) to ours (Z up, faces -Y): (x, y, z) -> (x, -z, y).
SMPL_TO_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
FEET = ("left_ankle", "right_ankle", "left_foot", "right_foot")
#: Each SMPL joint's child that sets its bone direction (the spine and neck over the hips and collars), -1 for leaves.
MAIN_CHILD = tuple(min((c for c, p in enumerate(kin.SMPL24_PARENTS) if p == j),
                       key=lambda c: kin.SMPL24[c].startswith(("left_", "right_")), default=-1) for j in range(24))


@dataclasses.dataclass
class Motion:
    """rotations: (T, 24, 3, 3) global rotations relative to the source's rest (SMPL24 order);
    root: (T, 3) the pelvis position in the source's units; leg_length: the source's hip-to-ankle length
    in those units; rest_directions: (24, 3) the source's rest bone directions (NaN where unknown), or
    None when the source's rest is SMPL's T-pose; fps: frames per second."""

    name: str
    rotations: np.ndarray
    root: np.ndarray
    fps: float
    leg_length: float = SMPL_LEG_LENGTH_M
    rest_directions: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return len(self.rotations)


def load_npz(path) -> Motion:
    """An SMPL/AMASS-style ``.npz``: ``poses`` (T, >= 72) axis-angle in SMPL order, ``trans`` (T, 3),
    optional ``mocap_framerate`` (default 30); SMPL's Y-up frame, or a Z-up world as AMASS's (detected
    from the root orientation, ``z_up``)."""
    path = pathlib.Path(path)
    try:
        data = np.load(path, allow_pickle=False)
        poses = np.asarray(data["poses"], np.float64)
        trans = np.asarray(data["trans"], np.float64) if "trans" in data else np.zeros((len(poses), 3))
        fps = float(data["mocap_framerate"]) if "mocap_framerate" in data else 30.0
    except (OSError, ValueError, KeyError) as e:
        raise AddonError(f"{path.name} is not an SMPL motion (.npz with 'poses' and 'trans'): {e}", code="motion")
    if poses.ndim != 2 or poses.shape[1] < 72 or len(poses) < 1 or trans.shape != (len(poses), 3):
        raise AddonError(f"{path.name}: 'poses' must be (T, >= 72) and 'trans' (T, 3); got {poses.shape} and "
                         f"{trans.shape}", code="motion")
    if not (np.isfinite(poses[:, :72]).all() and np.isfinite(trans).all() and fps > 0):
        raise AddonError(f"{path.name} holds NaN or infinite values", code="motion")
    M = SMPL_TO_BLENDER
    local = kin.axis_angle_to_matrix(poses[:, :72].reshape(-1, 24, 3) @ M.T)  # SMPL's body axes -> ours
    if z_up(poses):  # AMASS's Z-up world: the root orientation and trans are in our axes already
        local[:, 0] = kin.axis_angle_to_matrix(poses[:, :3]) @ M.T
        M = np.eye(3)
    rotations = kin.globals_from_locals(local, kin.SMPL24_PARENTS)
    return Motion(path.stem, rotations, trans @ M.T, fps)


def z_up(poses: np.ndarray) -> bool:
    """Whether an SMPL motion lives in a Z-up world (AMASS) rather than SMPL's Y-up one: the body's up
    axis (SMPL's +Y turned by the root orientation) points mostly along +Z."""
    up = kin.axis_angle_to_matrix(np.asarray(poses)[:, :3])[:, :, 1]
    return bool(np.median(up[:, 2]) > 0.7)


def resample(motion: Motion, fps: float) -> Motion:
    """The motion at ``fps`` (slerp between neighbouring frames); frames span the same duration."""
    if abs(fps - motion.fps) < 1e-6 or motion.num_frames < 2:
        return dataclasses.replace(motion, fps=fps) if motion.num_frames < 2 else motion
    duration = (motion.num_frames - 1) / motion.fps
    count = int(np.floor(duration * fps + 1e-6)) + 1
    src = np.arange(count) * motion.fps / fps
    i0 = np.minimum(np.floor(src).astype(int), motion.num_frames - 1)
    i1 = np.minimum(i0 + 1, motion.num_frames - 1)
    u = src - i0
    q = kin.matrix_to_quaternion(motion.rotations)
    qi = kin.slerp(q[i0], q[i1], np.repeat(u[:, None], q.shape[1], 1))
    root = motion.root[i0] * (1 - u)[:, None] + motion.root[i1] * u[:, None]
    return dataclasses.replace(motion, rotations=kin.quaternion_to_matrix(qi), root=root, fps=fps)


def leg_length(rest_joints: np.ndarray, names) -> float:
    """Mean hip-to-knee-to-ankle length of both legs (the rest pose's units)."""
    i = {n: k for k, n in enumerate(names)}
    total = []
    for side in ("left", "right"):
        hip, knee, ankle = (rest_joints[i[f"{side}_{n}"]] for n in ("hip", "knee", "ankle"))
        total.append(np.linalg.norm(knee - hip) + np.linalg.norm(ankle - knee))
    return float(np.mean(total))


def retarget(motion: Motion, rest_joints: np.ndarray, to_tpose: np.ndarray,
             stand_joints: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Put ``motion`` on a character with SMPL24 bones at ``rest_joints`` (24, 3), metres.

    to_tpose: (24, 3, 3) global rotations taking the character's rest to its T-pose; stand_joints:
    (24, 3) joints of the character standing on its floor (default: the rest joints) for the feet heights.
    Returns (T, 24, 3, 3) per-joint rotations relative to the parent (world-aligned, what a pose bone
    turns by) and (T, 3) the pelvis offset from its rest position, metres, with the lowest foot joint
    at its standing height over the motion.
    """
    parents, rest = kin.SMPL24_PARENTS, np.asarray(rest_joints, np.float64)
    fix = np.tile(np.eye(3), (24, 1, 1))
    if motion.rest_directions is not None:  # onto the source's rest bone directions
        child = MAIN_CHILD
        for j in range(24):
            d = motion.rest_directions[j]
            if child[j] >= 0 and np.isfinite(d).all():
                fix[j] = kin.shortest_arc(to_tpose[j] @ (rest[child[j]] - rest[j]), d)
    glob = motion.rotations @ (fix @ to_tpose)[None]
    scale = leg_length(rest, kin.SMPL24) / motion.leg_length
    offset = scale * (motion.root - motion.root[:1] * np.array([1.0, 1.0, 0.0]))
    stand = rest if stand_joints is None else np.asarray(stand_joints, np.float64)
    posed = kin.joint_positions(glob, rest, parents, offset)
    feet = [kin.SMPL24.index(n) for n in FEET]
    offset[:, 2] -= (posed[:, feet, 2] - stand[feet, 2]).min()
    return kin.locals_from_globals(glob, parents), offset


# ---------------------------------------------------------------------------------------------------
# BVH: bone-name mapping (CMU, Mixamo, Daz/Poser, Unreal, 3ds Max biped and SMPL-style names)

_SIDE_WORDS = {"upleg", "thigh", "upperleg", "hip", "leg", "shin", "calf", "knee", "lowerleg", "foot", "ankle",
               "toebase", "toe", "toes", "toe0", "ball", "collar", "clavicle", "shoulder", "shldr", "arm",
               "upperarm", "forearm", "lowerarm", "elbow", "hand", "wrist", "handmiddle1"}
# (SMPL joint without side, candidate words in priority order), resolved in this order, each name used once.
_SIDE_TABLE = (("hip", ("upleg", "thigh", "upperleg", "hip")), ("knee", ("leg", "shin", "calf", "lowerleg", "knee")),
               ("ankle", ("ankle", "foot")), ("foot", ("toebase", "toe", "toes", "toe0", "ball", "foot")),
               ("shoulder", ("arm", "upperarm", "shldr")), ("collar", ("collar", "clavicle", "shoulder")),
               ("shoulder", ("shoulder",)), ("elbow", ("forearm", "lowerarm", "elbow")),
               ("wrist", ("wrist", "hand")), ("hand", ("hand", "handmiddle1")))
_SPINE = re.compile(r"^(spine\d*|lowerback|abdomen\d*|chest\d*|upperchest|torso)$")
REQUIRED = ("pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle")


def normalise_bone_name(name: str) -> tuple[str, str]:
    """(side, word): side "left", "right" or ""; word lower-case letters and digits, prefixes such as
    ``mixamorig:`` or ``Bip01`` removed. ``LeftUpLeg`` -> ("left", "upleg"), ``thigh_l`` -> ("left", "thigh")."""
    raw = name.split(":")[-1].lower()
    raw = re.sub(r"^(mixamorig|bip0?1)[_\s.-]*", "", raw)
    parts = re.match(r"^(left|right|l|r)[_\s.-]*(.+)$", raw)
    if parts:
        word = re.sub(r"[^a-z0-9]", "", parts.group(2))
        if word in _SIDE_WORDS:
            return ("left" if parts.group(1).startswith("l") else "right"), word
    parts = re.match(r"^(.+?)[_\s.-]+(left|right|l|r)$", raw)
    if parts:
        word = re.sub(r"[^a-z0-9]", "", parts.group(1))
        if word in _SIDE_WORDS:
            return ("left" if parts.group(2).startswith("l") else "right"), word
    return "", re.sub(r"[^a-z0-9]", "", raw)


def map_bone_names(names, parents) -> dict[str, int]:
    """{SMPL joint: index into ``names``} for a source skeleton; raises AddonError listing the names when
    the legs and hips cannot be found."""
    keys = [normalise_bone_name(n) for n in names]
    depth = [0] * len(names)
    for b, p in enumerate(parents):
        depth[b] = depth[p] + 1 if p >= 0 else 0
    used, found = set(), {}

    def take(joint, side, words):
        if joint in found:
            return
        for word in words:
            hits = [b for b, k in enumerate(keys) if k == (side, word) and b not in used]
            if hits:
                found[joint] = min(hits, key=lambda b: depth[b])
                used.add(found[joint])
                return

    take("pelvis", "", ("hips", "hip", "pelvis", "root"))
    for side in ("left", "right"):
        for joint, words in _SIDE_TABLE:
            take(f"{side}_{joint}", side, words)
    spine = sorted((b for b, k in enumerate(keys) if not k[0] and _SPINE.match(k[1])), key=lambda b: depth[b])
    for joint, pick in zip(("spine1", "spine2", "spine3"), _spread(len(spine))):
        if pick is not None:
            found[joint] = spine[pick]
    necks = sorted((b for b, k in enumerate(keys) if not k[0] and re.match(r"^neck\d*$", k[1])), key=lambda b: depth[b])
    if necks:
        found["neck"] = necks[0]
    take("head", "", ("head",))
    missing = [j for j in REQUIRED if j not in found]
    if missing:
        raise AddonError(f"cannot map this skeleton's bones to the character's (no {', '.join(missing)}); "
                         f"its bones are: {', '.join(names)}. Supported names: CMU (Hips, LeftUpLeg, LeftLeg, "
                         "LeftFoot, ...), Mixamo (mixamorig:Hips, ...), Daz (hip, lThigh, lShin, ...), Unreal "
                         "(pelvis, thigh_l, calf_l, ...) and SMPL (Pelvis, L_Hip, L_Knee, ...)", code="motion")
    return found


def _spread(count: int) -> tuple:
    """Which of ``count`` spine bones (hips to neck) drive spine1, spine2, spine3."""
    if count == 0:
        return (None, None, None)
    if count == 1:
        return (0, None, None)
    if count == 2:
        return (0, None, 1)
    return (0, count // 2 if count > 3 else 1, count - 1)


def skeleton_motion(name: str, names, parents, rest_heads, rest_rotations, pose_rotations, root_positions,
                    fps: float) -> Motion:
    """A Motion from a sampled source skeleton (a BVH armature), all in Blender's world frame.

    rest_heads (B, 3), rest_rotations (B, 3, 3): each source bone's rest head and orientation;
    pose_rotations (T, B, 3, 3): their orientations per frame; root_positions (T, 3): the mapped pelvis's head.
    """
    found = map_bone_names(names, parents)
    T = len(pose_rotations)
    delta = pose_rotations @ np.swapaxes(np.asarray(rest_rotations)[None], -1, -2)   # (T, B, 3, 3) world delta
    rotations = np.tile(np.eye(3), (T, 24, 1, 1))
    directions = np.full((24, 3), np.nan)
    child = MAIN_CHILD
    for j, joint in enumerate(kin.SMPL24):
        p = kin.SMPL24_PARENTS[j]
        if joint in found:
            rotations[:, j] = delta[:, found[joint]]
            c = child[j]
            if c >= 0 and kin.SMPL24[c] in found:
                directions[j] = rest_heads[found[kin.SMPL24[c]]] - rest_heads[found[joint]]
        elif p >= 0:
            rotations[:, j] = rotations[:, p]
    heads = {j: np.asarray(rest_heads[found[j]]) for j in REQUIRED}
    legs = [np.linalg.norm(heads[f"{s}_knee"] - heads[f"{s}_hip"]) + np.linalg.norm(heads[f"{s}_ankle"] - heads[f"{s}_knee"])
            for s in ("left", "right")]
    return Motion(name, rotations, np.asarray(root_positions, np.float64), fps, float(np.mean(legs)), directions)
