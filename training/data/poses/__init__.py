"""Poses that look like people in photos: a key-pose library, variation within joint limits, all yaws.

Representation (``PoseBatch``, module ``representation``): per ``smpl24`` joint, XYZ Euler angles in
degrees of the local rotation in the world-aligned joint frame (``R = Rz @ Ry @ Rx``, the convention of
``munet.body.limits``), plus four hinge angles (left/right knee, left/right elbow) about the hinge axes
of ``munet.body.limits``. Reading the angles (person faces -Y, left is +X, Z up):

* X (lateral axis): a limb hanging down swings backwards for +X (hip flexion is negative X); the spine
  and the root bend forwards for +X.
* Y (front-back axis): the left arm is lowered for +Y and raised for -Y (right arm: mirrored); the left
  leg moves inwards for +Y. Z (vertical axis): twist; for an arm held out sideways, -Z (left) swings
  it forwards.
* Hinges measure flexion from Anny's rest pose. Anny rests in an A-pose with the elbows already bent by
  ~43 degrees and the knees by ~10, so a straight arm is a *negative* elbow angle (about -40). The
  engine samples hinges in ``HINGE_RANGES_DEG`` (elbows -38..100, knees -6..140): the elbows inside the
  anatomical range of ``munet.body.limits.HINGE_JOINTS`` (-40..145), the knees down to 6 degrees
  straighter than the rest pose (``HINGE_JOINTS``: 0..150). The Euler ranges are ``LIMITS_DEG``:
  ``munet.body.limits`` widened where photos need more (arms overhead, splits, kicks, cross-legged).

Key poses are authored as specs (joint -> angles): lower-body poses by family in ``lower_poses``
(``LOWER_POSES``: stand, sit, kneel, crouch, bend, lunge, jump, sport, dance, step), walking and running as an
analytic cycle in ``gait``, and arm gestures in ``arm_gestures`` (``ARM_GESTURES``): direct angles, or
inverse-kinematics targets for gestures defined by contact (hands on hips, arms crossed, hands on
knees), solved by ``arm_ik`` on the average skeleton in each lower pose they suit, by projected
gradient descent within the limits. ``library`` turns them into arrays (cached on disk). The sampler
(``sampler.sample_poses``) combines a lower-body key pose with an arm gesture, blends neighbours of the
same family, mirrors left/right, adds per-joint noise, clamps to the limits and turns the person to
any yaw with a modest pitch/roll; the data engine rejects self-intersecting results with a capsule
test (``collisions.capsule_intersections``).
"""

from training.data.poses.arm_gestures import ARM_GESTURES, ARMS_RELAXED, GESTURE_WEIGHTS
from training.data.poses.arm_ik import average_rest_joints, solve_arm_ik
from training.data.poses.collisions import capsule_intersections, capsule_radii, segment_distances
from training.data.poses.gait import gait_pose
from training.data.poses.library import PoseLibrary, build_library, pose_library
from training.data.poses.lower_poses import (
    AIRBORNE_FAMILIES, EXTRA_FAMILIES, FAMILY_WEIGHTS, LOWER_POSES, OFF_FLOOR_FAMILIES, STAND_LEGS,
)  # fmt: skip
from training.data.poses.representation import (
    ARM_JOINTS, HINGE_INDEX, HINGE_RANGES_DEG, HINGES, LIMITS_DEG, NUM_JOINTS, J, PoseBatch, joint_limits_deg,
    local_rotations, spec_to_arrays, to_axis_angle,
)  # fmt: skip
from training.data.poses.sampler import PoseDraw, sample_poses

__all__ = [
    "ARM_GESTURES", "ARMS_RELAXED", "GESTURE_WEIGHTS", "average_rest_joints", "solve_arm_ik",
    "capsule_intersections", "capsule_radii", "segment_distances", "gait_pose", "PoseLibrary", "build_library",
    "pose_library", "AIRBORNE_FAMILIES", "EXTRA_FAMILIES", "FAMILY_WEIGHTS", "OFF_FLOOR_FAMILIES", "LOWER_POSES",
    "STAND_LEGS", "ARM_JOINTS", "HINGE_INDEX",
    "HINGE_RANGES_DEG", "HINGES", "LIMITS_DEG", "NUM_JOINTS", "J", "PoseBatch", "joint_limits_deg",
    "local_rotations", "spec_to_arrays", "to_axis_angle", "PoseDraw", "sample_poses",
]  # fmt: skip
