"""The 33 MediaPipe landmarks on SMPL's topology, and the per-model choice of landmark regressor.

For SMPL (the user's own files) the landmarks are the model's own joints where MediaPipe's points are
joints (shoulders, elbows, wrists, hips, knees, ankles: rows of SMPL's ``J_regressor``, convex
combinations of vertices) and the usual SMPL surface vertices elsewhere (the vertex ids smplx ships for
SMPL-H's body: nose, eyes, ears, fingertips, heels, toes). Coarser than Anny's regressor
(``munet.body.keypoints``): eye corners share the eye vertex, mouth corners the nose vertex; their fit
weights are small anyway.
"""

from __future__ import annotations

import numpy as np

from munet.detect.landmarks import MEDIAPIPE_LANDMARKS
from munet.body.keypoints import pack_landmark_rows

SMPL_VERTEX_IDS = {
    "nose": 332, "left_eye": 2800, "right_eye": 6260, "left_ear": 583, "right_ear": 4071,
    "left_thumb": 2746, "left_index": 2319, "left_pinky": 2673,
    "right_thumb": 6191, "right_index": 5782, "right_pinky": 6133,
    "left_big_toe": 3216, "left_small_toe": 3226, "left_heel": 3387,
    "right_big_toe": 6617, "right_small_toe": 6624, "right_heel": 6787,
}  # fmt: skip  (smplx.vertex_ids["smplh"], renamed)
_FROM_JOINT = {
    "left_hip": 1, "right_hip": 2, "left_knee": 4, "right_knee": 5, "left_ankle": 7, "right_ankle": 8,
    "left_shoulder": 16, "right_shoulder": 17, "left_elbow": 18, "right_elbow": 19, "left_wrist": 20,
    "right_wrist": 21,
}  # fmt: skip
_SAME_AS = {
    "left_eye_inner": "left_eye", "left_eye_outer": "left_eye", "right_eye_inner": "right_eye",
    "right_eye_outer": "right_eye", "mouth_left": "nose", "mouth_right": "nose",
}  # fmt: skip


def smpl_landmark_arrays(joint_regressor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(33, K) int64 vertex indices and (33, K) float32 weights (rows sum to 1) on SMPL's 6,890 vertices.

    joint_regressor: (24, 6890) SMPL's ``J_regressor`` (non-negative rows summing to 1; negative entries,
    if any, are dropped and the row renormalised).
    """
    rows: dict[str, dict[int, float]] = {}
    for name in MEDIAPIPE_LANDMARKS:
        source = _SAME_AS.get(name, name)
        if source in _FROM_JOINT:
            row = np.clip(joint_regressor[_FROM_JOINT[source]], 0.0, None)
            nonzero = np.flatnonzero(row > 1e-8)
            rows[name] = {int(i): float(row[i]) for i in nonzero}
        elif source == "left_foot_index" or source == "right_foot_index":
            side = source.split("_")[0]
            rows[name] = {SMPL_VERTEX_IDS[f"{side}_big_toe"]: 0.7, SMPL_VERTEX_IDS[f"{side}_small_toe"]: 0.3}
        else:
            rows[name] = {SMPL_VERTEX_IDS[source]: 1.0}
    return pack_landmark_rows(rows)


def landmark_arrays(body) -> tuple[np.ndarray, np.ndarray]:
    """The landmark regressor (indices, weights) for a body model: Anny's own or SMPL's."""
    if body.name == "anny":
        from munet.body.keypoints import mediapipe_regressor_arrays

        return mediapipe_regressor_arrays()
    if body.name == "smpl":
        return smpl_landmark_arrays(body.smplx_model.J_regressor.detach().cpu().numpy())
    raise ValueError(f"no MediaPipe landmark regressor for body model {body.name!r}")
