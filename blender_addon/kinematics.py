"""Rig maths in numpy (no bpy): rotations, forward kinematics, the T-pose, and rebinding to another rest pose.

Conventions (the backend's, ``munet/reconstruction.py``): Blender's frame (metres, Z up, the person faces
-Y, their left is +X). A pose is one rotation per joint relative to its parent, expressed in
world-aligned axes (every joint frame is aligned with the world in the rest pose); the root's rotation is
the global orientation. ``locals`` below are such per-joint rotations, ``globals`` their products along
the chain (the rotation a bone has turned by, in world axes). Skinning is linear blend skinning about the
rest joints.
"""

from __future__ import annotations

import dataclasses

import numpy as np

#: SMPL's 24 joints in SMPL order (the names our armature's bones carry) and their parents.
SMPL24 = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle", "right_ankle",
    "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head", "left_shoulder",
    "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand",
)
SMPL24_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)

#: Rest pose choices for binding: the body model's own rest (Anny: an A-pose), a T-pose, the photo's pose.
REST_POSES = ("MODEL", "TPOSE", "PHOTO")


def axis_angle_to_matrix(axis_angle: np.ndarray) -> np.ndarray:
    """(..., 3) axis-angle radians -> (..., 3, 3) rotation matrices (Rodrigues)."""
    aa = np.asarray(axis_angle, np.float64)
    angle = np.linalg.norm(aa, axis=-1)
    axis = aa / np.maximum(angle, 1e-12)[..., None]
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = np.zeros_like(x)
    k = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(aa.shape[:-1] + (3, 3))
    s, c = np.sin(angle)[..., None, None], np.cos(angle)[..., None, None]
    return np.eye(3) + s * k + (1 - c) * (k @ k)


def matrix_to_quaternion(R: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations -> (..., 4) unit quaternions (w, x, y, z), w >= 0 (Shepperd's method)."""
    R = np.asarray(R, np.float64)
    m = R.reshape(-1, 3, 3)
    d0, d1, d2 = m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]
    t = np.stack([1 + d0 + d1 + d2, 1 + d0 - d1 - d2, 1 - d0 + d1 - d2, 1 - d0 - d1 + d2], 1)
    s = 2.0 * np.sqrt(np.maximum(t, 1e-300))                          # (N, 4): 4 x the largest component
    a, b, c = m[:, 2, 1] - m[:, 1, 2], m[:, 0, 2] - m[:, 2, 0], m[:, 1, 0] - m[:, 0, 1]
    e, f, g = m[:, 0, 1] + m[:, 1, 0], m[:, 0, 2] + m[:, 2, 0], m[:, 1, 2] + m[:, 2, 1]
    candidates = np.stack([
        np.stack([s[:, 0] / 4, a / s[:, 0], b / s[:, 0], c / s[:, 0]], 1),
        np.stack([a / s[:, 1], s[:, 1] / 4, e / s[:, 1], f / s[:, 1]], 1),
        np.stack([b / s[:, 2], e / s[:, 2], s[:, 2] / 4, g / s[:, 2]], 1),
        np.stack([c / s[:, 3], f / s[:, 3], g / s[:, 3], s[:, 3] / 4], 1)], 1)   # (N, 4 candidates, 4)
    q = candidates[np.arange(len(m)), t.argmax(1)]
    q *= np.where(q[:, :1] < 0, -1.0, 1.0)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return q.reshape(R.shape[:-2] + (4,))


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions (w, x, y, z) -> (..., 3, 3) rotations."""
    q = np.asarray(q, np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    return np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
                     2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
                     2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1).reshape(q.shape[:-1] + (3, 3))


def continuous_quaternions(q: np.ndarray) -> np.ndarray:
    """(T, ..., 4) quaternions with signs flipped along T so neighbours lie in the same hemisphere."""
    q = np.array(q, np.float64)
    for t in range(1, len(q)):
        flip = (q[t] * q[t - 1]).sum(-1) < 0
        q[t][flip] *= -1
    return q


def slerp(q0: np.ndarray, q1: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Spherical interpolation of (..., 4) quaternions at fractions u (broadcast over ...)."""
    q1 = np.where(((q0 * q1).sum(-1) < 0)[..., None], -q1, q1)
    dot = np.clip((q0 * q1).sum(-1), -1.0, 1.0)
    theta = np.arccos(dot)[..., None]
    u = np.asarray(u, np.float64)[..., None]
    small = theta < 1e-6
    sin = np.where(small, 1.0, np.sin(theta))
    a = np.where(small, 1 - u, np.sin((1 - u) * theta) / sin)
    b = np.where(small, u, np.sin(u * theta) / sin)
    out = a * q0 + b * q1
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


def shortest_arc(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(3, 3) the smallest rotation turning direction ``a`` onto direction ``b``."""
    a = np.asarray(a, np.float64) / max(np.linalg.norm(a), 1e-12)
    b = np.asarray(b, np.float64) / max(np.linalg.norm(b), 1e-12)
    axis = np.cross(a, b)
    s, c = np.linalg.norm(axis), float(np.dot(a, b))
    if s < 1e-9:
        if c > 0:
            return np.eye(3)
        other = np.array([1.0, 0, 0]) if abs(a[0]) < 0.9 else np.array([0, 1.0, 0])
        axis = np.cross(a, other)
        return axis_angle_to_matrix(axis / np.linalg.norm(axis) * np.pi)
    return axis_angle_to_matrix(axis / s * np.arctan2(s, c))


def globals_from_locals(local: np.ndarray, parents) -> np.ndarray:
    """(..., J, 3, 3) per-joint rotations relative to the parent -> rotations accumulated along the chain."""
    out = np.array(local, np.float64)
    for j, p in enumerate(parents):
        if p >= 0:
            out[..., j, :, :] = out[..., p, :, :] @ local[..., j, :, :]
    return out


def locals_from_globals(glob: np.ndarray, parents) -> np.ndarray:
    """Inverse of ``globals_from_locals``."""
    out = np.array(glob, np.float64)
    for j, p in enumerate(parents):
        if p >= 0:
            out[..., j, :, :] = np.swapaxes(glob[..., p, :, :], -1, -2) @ glob[..., j, :, :]
    return out


def joint_positions(glob: np.ndarray, rest_joints: np.ndarray, parents, root: np.ndarray | None = None) -> np.ndarray:
    """(..., J, 3) posed joint positions from global rotations (..., J, 3, 3) about ``rest_joints`` (J, 3);
    ``root`` (..., 3) moves the root joint (None: it stays at its rest position)."""
    rest = np.asarray(rest_joints, np.float64)
    out = np.zeros(glob.shape[:-2] + (3,))
    for j, p in enumerate(parents):
        if p < 0:
            out[..., j, :] = rest[j] + (0.0 if root is None else root)
        else:
            out[..., j, :] = out[..., p, :] + glob[..., p, :, :] @ (rest[j] - rest[p])
    return out


def tpose_globals(rest_joints: np.ndarray, names, parents) -> np.ndarray:
    """(J, 3, 3) global rotations that take this rest pose to a T-pose: upper arms, forearms and hands
    straight out along +X (left) and -X (right); everything else as it is."""
    index = {n: i for i, n in enumerate(names)}
    rest = np.asarray(rest_joints, np.float64)
    glob = np.tile(np.eye(3), (len(names), 1, 1))
    explicit = set()
    for side, sign in (("left", 1.0), ("right", -1.0)):
        chain = [f"{side}_{n}" for n in ("shoulder", "elbow", "wrist", "hand")]
        if not all(n in index for n in chain):
            continue
        turned = np.eye(3)
        for a, b in zip(chain[:-1], chain[1:]):
            direction = turned @ (rest[index[b]] - rest[index[a]])
            turned = shortest_arc(direction, (sign, 0.0, 0.0)) @ turned
            glob[index[a]] = turned
            explicit.add(index[a])
    for j, p in enumerate(parents):
        if j not in explicit and p >= 0:
            glob[j] = glob[p]
    return glob


def skin(rest_vertices: np.ndarray, joint_indices: np.ndarray, weights: np.ndarray, glob: np.ndarray,
         rest_joints: np.ndarray, posed_joints: np.ndarray) -> np.ndarray:
    """(V, 3) linear blend skinning: each vertex moves by sum_k w_k (G_k (v - J_k) + J'_k).

    rest_vertices (V, 3); joint_indices, weights (V, K) sparse; glob (J, 3, 3) global rotations;
    rest_joints, posed_joints (J, 3)."""
    v = np.asarray(rest_vertices, np.float64)
    idx = np.asarray(joint_indices)
    rel = v[:, None, :] - rest_joints[idx]                     # (V, K, 3)
    moved = np.einsum("vkab,vkb->vka", glob[idx], rel) + posed_joints[idx]
    return np.einsum("vk,vka->va", np.asarray(weights, np.float64), moved)


@dataclasses.dataclass
class Bind:
    """The character rebound to a chosen rest pose.

    rest_joints: (J, 3) metres, the new rest joints; rest_vertices: one (V, 3) array per surface;
    pose: (J, 3, 3) the photo's pose relative to the new rest (world-aligned locals);
    root_translation: (3,) metres; to_tpose: (J, 3, 3) global rotations taking the new rest to the T-pose;
    stand_joints: (J, 3) the body model's rest joints (standing on the same floor, z = 0).
    """

    rest_pose: str
    rest_joints: np.ndarray
    rest_vertices: list
    pose: np.ndarray
    root_translation: np.ndarray
    to_tpose: np.ndarray
    stand_joints: np.ndarray


def rebind(rest_joints, names, parents, pose_axis_angle, root_translation, surfaces, rest_pose: str = "MODEL") -> Bind:
    """Rebind the character to ``rest_pose`` (one of ``REST_POSES``).

    surfaces: [(rest_vertices (V, 3), joint_indices (V, K), weights (V, K))], all bound to the same
    skeleton. The new rest vertices are the old ones posed by linear blend skinning (same skin, so the
    Clothed surface stays on the Body); the photo's pose is re-expressed relative to the new rest.
    "PHOTO" keeps the photo's pose but not its global orientation (the rest stands upright, facing -Y).
    """
    if rest_pose not in REST_POSES:
        raise ValueError(f"rest pose {rest_pose!r} is not one of {REST_POSES}")
    rest = np.asarray(rest_joints, np.float64)
    J = len(names)
    photo = globals_from_locals(axis_angle_to_matrix(np.asarray(pose_axis_angle).reshape(J, 3)), parents)
    tpose = tpose_globals(rest, names, parents)
    if rest_pose == "MODEL":
        bind = np.tile(np.eye(3), (J, 1, 1))
    elif rest_pose == "TPOSE":
        bind = tpose
    else:
        local = axis_angle_to_matrix(np.asarray(pose_axis_angle).reshape(J, 3))
        local[0] = np.eye(3)
        bind = globals_from_locals(local, parents)
    new_joints = joint_positions(bind, rest, parents)
    if rest_pose == "MODEL":  # nothing moves: keep the vertices bit for bit
        new_vertices = [np.asarray(v) for v, _, _ in surfaces]
    else:
        new_vertices = [skin(v, idx, w, bind, rest, new_joints) for v, idx, w in surfaces]
    if rest_pose == "PHOTO" and surfaces:  # back on the rest pose's floor
        lift = np.array([0.0, 0.0, np.asarray(surfaces[0][0])[:, 2].min() - new_vertices[0][:, 2].min()])
        new_joints = new_joints + lift
        new_vertices = [v + lift for v in new_vertices]
    inverse = np.swapaxes(bind, -1, -2)
    pose = locals_from_globals(photo @ inverse, parents)
    root = rest[0] + np.asarray(root_translation, np.float64) - new_joints[0]
    return Bind(rest_pose, new_joints, [v.astype(np.float32) for v in new_vertices], pose, root, tpose @ inverse,
                rest)
