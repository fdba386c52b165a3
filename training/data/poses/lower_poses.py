"""The lower-body key poses (stand, sit, kneel, crouch, bend, lunge, jump, sport, dance; step outside the
default mix) and how often each family is drawn. Walking and running are analytic cycles (``gait``), not key poses.

Angles are Euler degrees in the convention of ``representation`` (person faces -Y, left is +X, Z up):
X (lateral axis): a leg swings backwards for +X (hip flexion is negative X), the spine and the root bend
forwards for +X; Y (front-back axis): the left leg moves inwards for +Y; Z (vertical axis): twist.
Knee hinges are flexion from Anny's rest pose (which rests ~10 degrees bent).
"""

from __future__ import annotations


def _legs(left_hip: tuple, right_hip: tuple | None = None, knees: tuple = (0, 0), ankles: tuple | None = None) -> dict:
    """Leg angles, the right hip and ankle given in LEFT-side terms (mirrored here: Y and Z negated);
    knee flexions (left, right)."""
    right_hip = left_hip if right_hip is None else right_hip
    spec = {
        "left_hip": tuple(left_hip),
        "right_hip": (right_hip[0], -right_hip[1], -right_hip[2]),
        "left_knee": knees[0],
        "right_knee": knees[1],
    }
    if ankles is not None:
        spec["left_ankle"] = tuple(ankles[0])
        spec["right_ankle"] = (ankles[1][0], -ankles[1][1], -ankles[1][2])
    return spec


STAND_LEGS = _legs((0, 3, 0), knees=(2, 2))

# Lower-body key poses: name -> (family, spec). Families group poses that may be blended together and
# decide which arm gestures fit.
LOWER_POSES: dict[str, tuple[str, dict]] = {
    "stand": ("stand", {**STAND_LEGS}),
    "stand_wide": ("stand", _legs((0, -6, 8), knees=(3, 3))),
    "contrapposto": ("stand", {"pelvis": (0, 4, 0), **_legs((0, 6, 0), (-12, -2, 10), knees=(0, 22)), "spine1": (0, -4, 0), "spine2": (0, -3, 0)}),
    "stand_cross_ankles": ("stand", _legs((-4, 9, -5), (4, 12, 8), knees=(6, 10))),
    "lean_back_foot": ("stand", {"pelvis": (-3, 0, 0), **_legs((-3, 2, 5), (-25, 4, 0), knees=(2, 45)), "spine1": (-5, 0, 0)}),
    "step_forward": ("stand", _legs((-22, 3, 0), (12, 3, 0), knees=(8, 14))),
    "lunge": ("lunge", {"pelvis": (4, 0, 0), **_legs((-85, 2, 0), (22, -2, 0), knees=(88, 40), ankles=((10, 0, 0), (-25, 0, 0))), "spine1": (-4, 0, 0)}),
    "lunge_deep": ("lunge", {**_legs((-95, 2, 0), (10, -2, 0), knees=(100, 85), ankles=((15, 0, 0), (-20, 0, 0)))}),
    "lunge_side": ("lunge", {**_legs((-20, -38, 10), (-5, -18, -10), knees=(85, 2))}),
    "sit_chair": ("sit", {**_legs((-88, 2, 0), knees=(90, 90)), "spine1": (6, 0, 0)}),
    "sit_chair_crossed_knees": ("sit", {**_legs((-95, 14, -8), (-80, 0, 5), knees=(85, 92)), "spine1": (4, 0, 0)}),
    "sit_chair_legs_forward": ("sit", {"pelvis": (-8, 0, 0), **_legs((-78, 2, 0), knees=(45, 55), ankles=((15, 0, 0), (15, 0, 0))), "spine1": (10, 0, 0)}),
    "sit_chair_one_leg_back": ("sit", {**_legs((-90, 2, 0), (-75, 4, 0), knees=(80, 120))}),
    "sit_floor_cross_legged": ("sit_floor", {**_legs((-75, -60, 40), knees=(130, 130)), "spine1": (10, 0, 0)}),
    "sit_floor_knees_up": ("sit_floor", {"pelvis": (-15, 0, 0), **_legs((-95, -6, 0), knees=(110, 110)), "spine1": (20, 0, 0), "spine2": (10, 0, 0)}),
    "sit_floor_legs_out": ("sit_floor", {"pelvis": (-10, 0, 0), **_legs((-80, -5, 0), knees=(8, 12)), "spine1": (14, 0, 0)}),
    "kneel": ("kneel", {"pelvis": (0, 0, 0), **_legs((-5, 2, 0), knees=(90, 90), ankles=((25, 0, 0), (25, 0, 0))), "spine1": (-3, 0, 0)}),
    "kneel_one_knee": ("kneel", {**_legs((-85, 2, 0), (0, 2, 0), knees=(95, 90), ankles=((10, 0, 0), (25, 0, 0)))}),
    "kneel_sit_heels": ("kneel", {"pelvis": (-5, 0, 0), **_legs((-45, 2, 0), knees=(138, 138), ankles=((25, 0, 0), (25, 0, 0))), "spine1": (8, 0, 0)}),
    "crouch": ("crouch", {"pelvis": (25, 0, 0), **_legs((-115, -12, 8), knees=(135, 135), ankles=((20, 0, 0), (20, 0, 0))), "spine1": (15, 0, 0), "spine2": (10, 0, 0)}),
    "squat_half": ("crouch", {"pelvis": (25, 0, 0), **_legs((-85, -10, 6), knees=(90, 90), ankles=((-15, 0, 0), (-15, 0, 0))), "spine1": (10, 0, 0)}),
    "bend_over": ("bend", {"pelvis": (45, 0, 0), **_legs((-45, 2, 0), knees=(8, 8)), "spine1": (20, 0, 0), "spine2": (10, 0, 0), "spine3": (5, 0, 0), "neck": (-25, 0, 0)}),
    "bend_knees": ("bend", {"pelvis": (40, 0, 0), **_legs((-70, -5, 0), knees=(65, 65), ankles=((-15, 0, 0), (-15, 0, 0))), "spine1": (20, 0, 0), "spine2": (10, 0, 0), "neck": (-20, 0, 0)}),
    "jump": ("jump", {**_legs((-45, 2, 0), knees=(75, 80), ankles=((25, 0, 0), (25, 0, 0)))}),
    "jump_star": ("jump", {**_legs((0, -30, 0), knees=(5, 5), ankles=((20, 0, 0), (20, 0, 0)))}),
    "kick": ("sport", {"pelvis": (-8, 0, 0), **_legs((-85, 5, 0), (8, 4, 0), knees=(15, 10), ankles=((20, 0, 0), (0, 0, 0))), "spine1": (-5, 0, 0)}),
    "knee_raise": ("sport", {**_legs((-95, 2, 0), (0, 3, 0), knees=(110, 3), ankles=((20, 0, 0), (0, 0, 0)))}),
    "stand_one_leg_back": ("sport", {**_legs((5, 3, 0), (0, 3, 0), knees=(95, 3))}),
    "warrior": ("lunge", {**_legs((-70, -25, 25), (20, -20, -30), knees=(80, 2)), "spine1": (-3, 0, 0)}),
    "dance_leg_lift": ("dance", {"pelvis": (0, 6, 0), **_legs((-40, -10, 10), (0, 6, 0), knees=(70, 5)), "spine1": (0, -6, 0), "spine2": (0, -6, 0)}),
    "dance_sway": ("dance", {"pelvis": (0, -8, 10), **_legs((0, 10, 0), (-20, -4, 0), knees=(5, 30)), "spine1": (0, 8, -8), "spine2": (0, 6, -5)}),
    "dance_step": ("dance", {"pelvis": (0, 0, -15), **_legs((15, -14, 0), (-35, 6, 0), knees=(40, 20)), "spine2": (0, 0, 12)}),
    # one foot up on a step or a stair (~20 and ~35 cm; the sole about level), the other leg standing
    "step_up": ("step", {**_legs((-50, 2, 0), (0, 3, 0), knees=(75, 3), ankles=((-20, 0, 0), (0, 0, 0))), "spine1": (5, 0, 0)}),
    "step_up_high": ("step", {"pelvis": (8, 0, 0), **_legs((-70, 2, 0), (5, 3, 0), knees=(95, 8), ankles=((-20, 0, 0), (0, 0, 0))), "spine1": (8, 0, 0)}),
}

# how often each lower-body family is drawn (photos: mostly standing and walking)
FAMILY_WEIGHTS = {
    "stand": 0.30, "walk": 0.14, "run": 0.07, "sit": 0.10, "sit_floor": 0.04, "kneel": 0.04, "crouch": 0.05,
    "bend": 0.04, "lunge": 0.06, "jump": 0.04, "sport": 0.05, "dance": 0.07,
}  # fmt: skip

# families outside the default mix, drawn only where a data config's ``family_weights`` names them (the
# held-out set of benchmark protocol v2): appended here so that the default mix draws as before
EXTRA_FAMILIES = ("step",)

# families whose people may be off the floor (``DataConfig.off_floor_m`` lifts them): jumps
AIRBORNE_FAMILIES = ("jump",)

# families with both feet, or one foot on a step, off the floor: benchmark protocol v2's ``off_floor`` subset
OFF_FLOOR_FAMILIES = AIRBORNE_FAMILIES + ("step",)

