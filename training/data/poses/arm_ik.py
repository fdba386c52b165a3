"""Inverse kinematics for arm gestures defined by contact: the collars, shoulders and elbow hinges
that put the wrists (and elbows) on their targets, on the average skeleton posed by a lower-body key
pose, within the joint limits (projected gradient descent, solved once when the library is built)."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import torch

from munet.body.lbs import forward_kinematics
from munet.body.skeleton import SMPL24_PARENTS
from training.data.poses.arm_gestures import ARMS_RELAXED
from training.data.poses.representation import (
    ARM_JOINTS, HINGE_RANGES_DEG, LIMITS_DEG, NUM_JOINTS, J, local_rotations, spec_to_arrays,
)  # fmt: skip


@functools.lru_cache(maxsize=1)
def average_rest_joints() -> torch.Tensor:
    """(1, 24, 3) float64 rest joints of the average Anny adult (what key poses are authored on).

    A fixed copy (the default phenotype, metres) so the library does not need to build Anny."""
    joints = [
        (0.0, -0.011, 0.87), (0.102, -0.008, 0.858), (-0.102, -0.008, 0.858), (0.0, 0.022, 0.937),
        (0.135, -0.04, 0.469), (-0.135, -0.04, 0.469), (0.0, 0.008, 1.081), (0.177, -0.004, 0.071),
        (-0.177, -0.004, 0.071), (0.0, 0.032, 1.213), (0.188, -0.136, 0.025), (-0.188, -0.136, 0.025),
        (0.0, -0.008, 1.379), (0.022, -0.026, 1.312), (-0.022, -0.026, 1.312), (0.0, -0.042, 1.476),
        (0.162, -0.017, 1.287), (-0.162, -0.017, 1.287), (0.329, -0.021, 1.098), (-0.329, -0.021, 1.098),
        (0.446, -0.179, 0.983), (-0.446, -0.179, 0.983), (0.488, -0.247, 0.93), (-0.488, -0.247, 0.93),
    ]  # fmt: skip
    return torch.tensor(joints, dtype=torch.float64)[None]

IK_JOINTS = ("left_wrist", "right_wrist", "left_elbow", "right_elbow")
ARM_CHAIN = frozenset(("left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
                       "left_hand", "right_hand"))
# the variables: collar and shoulder Euler angles (12) and the two elbow hinges
FREE_JOINTS = tuple(J[n] for n in ("left_collar", "right_collar", "left_shoulder", "right_shoulder"))


@dataclasses.dataclass
class _Problems:
    """P IK problems. euler (P, 24, 3) / hinge (P, 4): start angles in degrees (lower pose + relaxed
    arms + the gesture's fixed angles); refs / frames (P, 4): per IK joint, the reference joint and the
    joint whose posed frame the offset is in; offsets (P, 4, 3) metres; weight (P, 4) (0: no target)."""

    euler: np.ndarray
    hinge: np.ndarray
    refs: torch.Tensor
    frames: torch.Tensor
    offsets: torch.Tensor
    weight: torch.Tensor


def _problems(base: list[tuple[np.ndarray, np.ndarray]], specs: list[dict], targets: list[dict]) -> _Problems:
    count = len(specs)
    euler = np.zeros((count, NUM_JOINTS, 3), np.float32)
    hinge = np.zeros((count, 4), np.float32)
    refs = np.zeros((count, len(IK_JOINTS)), np.int64)
    frames = np.zeros((count, len(IK_JOINTS)), np.int64)
    offsets = torch.zeros(count, len(IK_JOINTS), 3, dtype=torch.float64)
    weight = torch.zeros(count, len(IK_JOINTS), dtype=torch.float64)
    for g, ((lower_euler, lower_hinge), spec, target) in enumerate(zip(base, specs, targets)):
        # start from relaxed arms so the solver finds the natural elbow-down branch
        arm_euler, arm_hinge, _ = spec_to_arrays({**ARMS_RELAXED, **spec})
        euler[g], hinge[g] = lower_euler, lower_hinge
        euler[g, list(ARM_JOINTS)] = arm_euler[list(ARM_JOINTS)]
        hinge[g, 2:] = arm_hinge[2:]
        for joint, (ref, offset, w) in target.items():
            k = IK_JOINTS.index(joint)
            refs[g, k] = J[ref]
            frames[g, k] = J["spine3"] if ref in ARM_CHAIN else J[ref]
            offsets[g, k] = torch.tensor(offset, dtype=torch.float64)
            weight[g, k] = w
    return _Problems(euler, hinge, torch.from_numpy(refs), torch.from_numpy(frames), offsets, weight)


def solve_arm_ik(base: list[tuple[np.ndarray, np.ndarray]], specs: list[dict], targets: list[dict],
                 iterations: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Solve the arm joints (collars, shoulders, elbow hinges) of gestures for their IK targets on the
    average skeleton posed by a lower-body key pose, within the limits, all at once (projected Adam).

    base: per problem, the lower pose's (24, 3) Euler degrees and (4,) hinges. specs: per problem, the
    gesture's fixed angles. targets: per problem, {joint in IK_JOINTS: (reference joint, offset (3,)
    metres in the reference joint's posed frame -- spine3's for arm joints --, weight)}.
    Returns (P, 24, 3) Euler degrees and (P, 4) hinges of the whole pose.
    """
    problems = _problems(base, specs, targets)
    count = len(specs)
    rest = average_rest_joints().expand(count, -1, -1)
    free = list(FREE_JOINTS)
    euler_t = torch.from_numpy(problems.euler).double()
    hinge_t = torch.from_numpy(problems.hinge).double()
    variables = torch.cat([euler_t[:, free].reshape(count, -1), hinge_t[:, 2:]], 1).clone().requires_grad_(True)
    low = torch.cat([torch.from_numpy(LIMITS_DEG[free, :, 0]).double().reshape(-1), torch.from_numpy(HINGE_RANGES_DEG[2:, 0]).double()])
    high = torch.cat([torch.from_numpy(LIMITS_DEG[free, :, 1]).double().reshape(-1), torch.from_numpy(HINGE_RANGES_DEG[2:, 1]).double()])
    ik_index = [J[n] for n in IK_JOINTS]
    rows = torch.arange(count)[:, None]

    def assemble(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        e = euler_t.clone()
        e[:, free] = v[:, :12].reshape(count, 4, 3)
        h = hinge_t.clone()
        h[:, 2:] = v[:, 12:]
        return e, h

    def loss_of(v: torch.Tensor) -> torch.Tensor:
        e, h = assemble(v)
        rotations, joints = forward_kinematics(local_rotations(e, h, rest), rest, SMPL24_PARENTS)
        goal = joints[rows, problems.refs] + torch.einsum("pkij,pkj->pki", rotations[rows, problems.frames], problems.offsets)
        loss = (problems.weight * ((joints[:, ik_index] - goal) ** 2).sum(-1)).sum() * 1e4
        return loss + 1e-3 * (v[:, :6] ** 2).sum()  # the collars move little

    _projected_adam(loss_of, variables, low, high, iterations)
    e, h = assemble(variables.detach())
    return e.numpy().astype(np.float32), h.numpy().astype(np.float32)


def _projected_adam(loss_of, variables: torch.Tensor, low: torch.Tensor, high: torch.Tensor, iterations: int,
                    lr: float = 2.0, beta1: float = 0.9, beta2: float = 0.999) -> None:
    """Minimise ``loss_of(variables)`` in place by Adam, clamping to [low, high] after every step.
    By hand: torch.optim imports torch._dynamo (~3 s)."""
    first, second = torch.zeros_like(variables), torch.zeros_like(variables)
    for step in range(1, iterations + 1):
        (grad,) = torch.autograd.grad(loss_of(variables), variables)
        with torch.no_grad():
            first.mul_(beta1).add_(grad, alpha=1 - beta1)
            second.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            update = (first / (1 - beta1**step)) / ((second / (1 - beta2**step)).sqrt() + 1e-8)
            variables.sub_(lr * update)
            variables.copy_(torch.maximum(torch.minimum(variables, high), low))
