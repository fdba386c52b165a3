"""Arm gestures: direct angles, or inverse-kinematics targets for gestures defined by contact (hands on
hips, arms crossed, hands on knees), solved by ``arm_ik`` on each lower-body key pose they suit.

Shoulders are Euler degrees in the convention of ``representation``: Y lowers the left arm for +Y and
raises it for -Y (right arm mirrored); for an arm held out sideways, -Z (left) swings it forwards.
Elbow hinges are flexion from Anny's rest pose, which already bends the elbows ~43 degrees: -28 is a
relaxed, nearly straight arm and the straightest allowed is -38 (``HINGE_RANGES_DEG``).
"""

from __future__ import annotations

ARMS_RELAXED = {"left_shoulder": (-4, 38, 0), "right_shoulder": (-4, -38, 0), "left_elbow": -28, "right_elbow": -28}


def _arms(left: tuple, right: tuple | None = None, elbows: tuple = (-28, -28), wrists: tuple | None = None) -> dict:
    """Arm angles: shoulder Euler for the left arm and (optionally) the right arm given in LEFT-side
    terms (mirrored here), elbow flexions (left, right)."""
    right = left if right is None else right
    spec = {
        "left_shoulder": tuple(left),
        "right_shoulder": (right[0], -right[1], -right[2]),
        "left_elbow": elbows[0],
        "right_elbow": elbows[1],
    }
    if wrists is not None:
        spec["left_wrist"] = tuple(wrists[0])
        spec["right_wrist"] = (wrists[1][0], -wrists[1][1], -wrists[1][2])
    return spec


# Arm gestures: name -> (which lower families they suit, "*" = all; spec; IK targets or None). IK
# targets: joint -> (reference joint, offset in metres in the reference joint's posed frame -- spine3's
# when the reference is an arm joint --, weight); solved on the average skeleton in every lower-body key
# pose the gesture suits (walking and running use the standing legs).
ARM_GESTURES: dict[str, tuple[tuple[str, ...], dict, dict | None]] = {
    "relaxed": (("*",), {**ARMS_RELAXED}, None),
    "relaxed_bent": (("*",), _arms((-12, 36, 0), elbows=(0, 5)), None),
    "slightly_out": (("*",), _arms((0, 20, 0), (5, 28, 0), elbows=(-15, -10)), None),
    "hands_on_hips": (("stand", "lunge", "dance"), {}, {
        "left_wrist": ("pelvis", (0.2, 0.0, 0.1), 1.0), "right_wrist": ("pelvis", (-0.2, 0.0, 0.1), 1.0),
        "left_elbow": ("spine3", (0.3, 0.08, -0.15), 0.3), "right_elbow": ("spine3", (-0.3, 0.08, -0.15), 0.3)}),
    "one_hand_on_hip": (("stand", "lunge", "dance", "sit"), {"right_shoulder": (-4, -38, 0), "right_elbow": -25}, {
        "left_wrist": ("pelvis", (0.2, 0.0, 0.1), 1.0), "left_elbow": ("spine3", (0.3, 0.08, -0.15), 0.3)}),
    "arms_crossed": (("stand", "sit", "lunge"), {}, {
        "left_wrist": ("spine3", (-0.1, -0.22, -0.13), 1.0), "right_wrist": ("spine3", (0.08, -0.17, -0.1), 1.0),
        "left_elbow": ("spine3", (0.2, -0.1, -0.22), 0.4), "right_elbow": ("spine3", (-0.2, -0.08, -0.22), 0.4)}),
    "hands_clasped_front": (("stand", "sit", "kneel"), {}, {
        "left_wrist": ("pelvis", (0.04, -0.18, -0.05), 1.0), "right_wrist": ("pelvis", (-0.04, -0.18, -0.05), 1.0)}),
    "hands_behind_back": (("stand",), {}, {
        "left_wrist": ("pelvis", (0.05, 0.2, 0.05), 1.0), "right_wrist": ("pelvis", (-0.05, 0.2, 0.05), 1.0)}),
    "hands_in_pockets": (("stand", "lunge"), {}, {
        "left_wrist": ("pelvis", (0.18, -0.08, -0.08), 1.0), "right_wrist": ("pelvis", (-0.18, -0.08, -0.08), 1.0)}),
    "phone_at_ear": (("stand", "sit", "walk"), {"right_shoulder": (-4, -38, 0), "right_elbow": -20}, {
        "left_wrist": ("head", (0.1, -0.02, 0.0), 1.0), "left_elbow": ("spine3", (0.2, -0.1, -0.1), 0.3)}),
    "phone_in_front": (("stand", "sit", "walk"), {}, {
        "left_wrist": ("spine3", (0.05, -0.32, 0.0), 1.0), "right_wrist": ("spine3", (-0.05, -0.32, 0.0), 1.0)}),
    "wave": (("stand", "walk", "sit", "kneel", "lunge"), {"right_shoulder": (-4, -38, 0), "right_elbow": -28}, {
        "left_wrist": ("left_shoulder", (0.3, -0.08, 0.3), 1.0), "left_elbow": ("left_shoulder", (0.27, -0.02, -0.02), 0.5)}),
    "point_forward": (("stand", "walk", "lunge"), {**_arms((-85, 30, 0), (-4, 38, 0), elbows=(-30, -28))}, None),
    "point_side": (("stand", "lunge"), {**_arms((0, -40, 0), (-4, 38, 0), elbows=(-32, -25))}, None),
    "arms_up": (("stand", "jump", "dance", "kneel"), {**_arms((-20, -120, 0), elbows=(-25, -25))}, None),
    "arms_up_v": (("stand", "jump", "dance", "lunge"), {**_arms((0, -105, 0), elbows=(-30, -30))}, None),
    "t_pose": (("stand", "lunge", "jump", "sport"), {**_arms((0, -45, 0), elbows=(-35, -35))}, None),
    "arms_forward": (("stand", "crouch", "jump", "sport", "bend"), {**_arms((-80, 32, 5), elbows=(-30, -30))}, None),
    "hands_on_head": (("stand", "sit", "kneel"), {}, {
        "left_wrist": ("head", (0.06, 0.0, 0.15), 1.0), "right_wrist": ("head", (-0.06, 0.0, 0.15), 1.0),
        "left_elbow": ("head", (0.3, -0.03, 0.0), 0.4), "right_elbow": ("head", (-0.3, -0.03, 0.0), 0.4)}),
    "hand_on_chin": (("stand", "sit"), {"right_shoulder": (-4, -38, 0), "right_elbow": -25}, {
        "left_wrist": ("head", (0.0, -0.13, -0.1), 1.0), "left_elbow": ("spine3", (0.15, -0.22, -0.12), 0.4)}),
    "boxing_guard": (("stand", "lunge", "sport"), {}, {
        "left_wrist": ("spine3", (0.1, -0.3, 0.2), 1.0), "right_wrist": ("spine3", (-0.08, -0.26, 0.14), 1.0),
        "left_elbow": ("spine3", (0.2, -0.12, -0.1), 0.4), "right_elbow": ("spine3", (-0.2, -0.1, -0.12), 0.4)}),
    "throw": (("stand", "lunge", "sport"), {"right_shoulder": (-60, -20, 0), "right_elbow": -10}, {
        "left_wrist": ("left_shoulder", (0.12, 0.22, 0.25), 1.0), "left_elbow": ("left_shoulder", (0.27, 0.05, 0.0), 0.5)}),
    "selfie": (("stand", "walk", "sit"), {**_arms((-70, -20, -10), (-4, 38, 0), elbows=(-30, -28))}, None),
    "hands_on_knees": (("crouch", "bend", "sit", "sit_floor"), {}, {
        "left_wrist": ("left_knee", (0.0, -0.09, 0.05), 1.0), "right_wrist": ("right_knee", (0.0, -0.09, 0.05), 1.0)}),
    "hands_on_thighs": (("sit", "kneel"), {}, {
        "left_wrist": ("left_hip", (0.0, -0.11, -0.25), 1.0), "right_wrist": ("right_hip", (0.0, -0.11, -0.25), 1.0)}),
    "arms_around_knees": (("sit_floor",), {}, {
        "left_wrist": ("left_knee", (-0.06, -0.1, -0.12), 1.0), "right_wrist": ("right_knee", (0.06, -0.1, -0.12), 1.0)}),
    "lean_back_hands": (("sit_floor",), {**_arms((45, 10, 0), elbows=(-30, -30))}, None),
    "dance_arms": (("dance", "stand", "jump"), {**_arms((-30, -90, -20), (20, -30, 30), elbows=(60, 40))}, None),
    "dance_arms_2": (("dance", "stand"), {**_arms((-60, -50, 0), (10, 10, 0), elbows=(90, 80))}, None),
}

# relative weights of arm gestures among those that suit a pose (default 1)
GESTURE_WEIGHTS = {"relaxed": 6.0, "relaxed_bent": 5.0, "slightly_out": 3.0}