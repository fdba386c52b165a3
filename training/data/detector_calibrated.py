"""The simulated detector fitted to the real MediaPipe (``python -m training.calibrate``).

``detector.DetectorConfig(calibration=PATH)`` switches the data engine's detector to this model; its
parameters are the ``simulator`` section of the statistics file PATH (``training/calibration/*.json``),
written by the calibration tool from measurements of MediaPipe 0.10.21 on synthetic renders. Nothing
here is a hand-set number: every rate, offset and spread comes from that file.

The model, per sample:

* **2D keypoints**: a per-landmark definition offset (MediaPipe's landmark vs Anny's regressed one) and
  per-landmark noise, both in the body frame (``body_frame``: up along the torso, lateral towards the
  person's left) as fractions of the person's height; a per-sample noise scale (log-normal); larger
  noise where occluded or outside the photo; outliers; left/right swaps of the whole body (front/back
  confusion), of the arms or of the legs; visibility scores drawn from the measured score histograms
  of visible, occluded and out-of-photo landmarks.
* **World keypoints**: the truth, hip-centred in the camera frame, with the same left/right swap as the
  2D keypoints, a whole-body depth mirror (the torso's front/back flip), depth flips of the spine and of
  limb segments about their parent joint (the spine's flip mirrors the upper body's depth about the
  hips' midpoint), a per-axis stretch (depth comes out compressed), a near-fixed body size (scale =
  c * (1.7 / stature)^k, log-normal spread), a tilt about the camera's x axis that follows the camera's
  pitch, and noise per landmark and axis.
* **Misses**: the detector finds nobody at a rate that depends on how much of the body the photo cuts.
* **Mask**: the clean silhouette blurred, a smooth random field on its threshold (wobble), a boundary
  shift, the odd blob, then a soft edge.
* **Crop**: the pipeline's crop is centred and sized from the detector's own box: a random offset of the
  centre and a log-normal side ratio relative to the true person's crop.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import pathlib

import cv2
import numpy as np

from munet.detect.landmarks import MEDIAPIPE_LANDMARKS, MIRRORED_LANDMARKS

L = {name: i for i, name in enumerate(MEDIAPIPE_LANDMARKS)}
NUM_LANDMARKS = len(MEDIAPIPE_LANDMARKS)
SWAP = MIRRORED_LANDMARKS  # a whole-body left/right swap of the labels
_HAND = ("pinky", "index", "thumb")
SWAP_GROUPS = {
    "arms": tuple(L[f"left_{p}"] for p in ("elbow", "wrist") + _HAND),
    "legs": tuple(L[f"left_{p}"] for p in ("knee", "ankle", "heel", "foot_index")),
}
# limb segments (parent landmark, child landmark, landmarks that move with the child), per side; the
# spine (hips' midpoint to shoulders' midpoint) carries the whole upper body
LIMB_KINDS = ("upper_arm", "forearm", "thigh", "shin")
SEGMENT_KINDS = LIMB_KINDS + ("spine",)
UPPER_BODY = tuple(range(L["right_thumb"] + 1))  # face, shoulders, arms, hands
SEGMENTS = {
    f"{side}_{kind}": (L[f"{side}_{a}"], L[f"{side}_{b}"], tuple(L[f"{side}_{m}"] for m in moved))
    for side in ("left", "right")
    for kind, a, b, moved in (
        ("upper_arm", "shoulder", "elbow", ("elbow", "wrist") + _HAND),
        ("forearm", "elbow", "wrist", ("wrist",) + _HAND),
        ("thigh", "hip", "knee", ("knee", "ankle", "heel", "foot_index")),
        ("shin", "knee", "ankle", ("ankle", "heel", "foot_index")),
    )
}
VISIBILITY_BINS = 10  # histogram bins of visibility scores on [0, 1]
CUT_EDGES = (0.0, 0.2, 0.45)  # fraction of the 33 true landmarks outside the photo: none, <= 0.2, <= 0.45, more
VISIBILITY_CATEGORIES = ("visible", "occluded", "out_of_frame")
REPO = pathlib.Path(__file__).resolve().parents[2]


def body_frame(gt_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(up, lateral) unit (2,) image vectors of one person from its true landmarks (33, 2) pixels: up
    from the hips' midpoint to the shoulders' (screen up when no torso is visible), lateral
    perpendicular to it, towards the person's left (their left hip and shoulder side)."""
    hip = 0.5 * (gt_px[L["left_hip"]] + gt_px[L["right_hip"]])
    shoulder = 0.5 * (gt_px[L["left_shoulder"]] + gt_px[L["right_shoulder"]])
    up = shoulder - hip
    norm = float(np.hypot(*up))
    up = up / norm if norm > 1e-6 else np.array([0.0, -1.0])
    lateral = np.array([-up[1], up[0]])
    across = (gt_px[L["left_hip"]] - gt_px[L["right_hip"]]) + (gt_px[L["left_shoulder"]] - gt_px[L["right_shoulder"]])
    if float(lateral @ across) < 0:
        lateral = -lateral
    return up, lateral


def cut_bin(in_frame: np.ndarray) -> int:
    """The bin of how much of the body the photo cuts: 0 none, 1 <= 20 % of the landmarks out, 2 <= 45 %,
    3 more. in_frame: (33,) bool, the true landmarks inside the photo."""
    out = 1.0 - float(np.mean(in_frame))
    return int(np.searchsorted(np.asarray(CUT_EDGES), out, side="left")) if out > 0 else 0


def segment_gaps(points: np.ndarray) -> dict[str, np.ndarray]:
    """Depth (camera z) of each segment's child minus its parent, (...,) metres, for the limb segments
    and the torso's: ``shoulders`` / ``hips`` (left minus right), ``spine`` (shoulders' midpoint minus the
    hips'). points: (..., 33, 3) camera frame (z away from the camera)."""
    z = points[..., 2]
    gaps = {name: z[..., child] - z[..., parent] for name, (parent, child, _) in SEGMENTS.items()}
    gaps["shoulders"] = z[..., L["left_shoulder"]] - z[..., L["right_shoulder"]]
    gaps["hips"] = z[..., L["left_hip"]] - z[..., L["right_hip"]]
    gaps["spine"] = 0.5 * (z[..., L["left_shoulder"]] + z[..., L["right_shoulder"]] - z[..., L["left_hip"]] - z[..., L["right_hip"]])
    return gaps


def hip_centred(points: np.ndarray) -> np.ndarray:
    """(..., 33, 3) points minus the hips' midpoint."""
    return points - 0.5 * (points[..., L["left_hip"], :] + points[..., L["right_hip"], :])[..., None, :]


def rotation_x(angle_rad: float) -> np.ndarray:
    """(3, 3) rotation about the camera's x axis (y down, z forward: positive turns +y towards +z)."""
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


@dataclasses.dataclass(frozen=True)
class CalibratedModel:
    """The simulator's parameters (the statistics file's ``simulator`` section; see the module docstring).

    offset, sigma: (33, 2) fractions of the person's height in the body frame (lateral, up).
    sample_log_std: spread of the per-sample noise scale; occluded_factor / out_of_frame_factor: noise
    multipliers; outlier_rate: per landmark, outliers move 5-15 % of the height.
    visibility: category -> (VISIBILITY_BINS,) probabilities; miss_rate: (4,) per ``cut_bin``.
    swap: body / arms / legs rates; world_follows_swap: share of swaps the world keypoints share.
    torso_flip: whole-body depth mirror rate; segment_flip: SEGMENT_KINDS -> rate.
    axis_scale: (2, 3) mean and std of the per-sample stretch of each camera axis (depth is compressed);
    tilt_deg: (mean, std, slope per degree of camera pitch); scale: (k, log c, log std);
    world_noise_m: (33, 3) per landmark and camera axis. mask: wobble, shift, blur (lo, hi), blob_rate.
    crop: ``center_mean`` / ``center_std`` (2,) fractions of the true crop's side, ``log_side`` (mean, std).
    """

    offset: np.ndarray
    sigma: np.ndarray
    sample_log_std: float
    occluded_factor: float
    out_of_frame_factor: float
    outlier_rate: float
    visibility: dict[str, np.ndarray]
    miss_rate: np.ndarray
    swap: dict[str, float]
    world_follows_swap: float
    torso_flip: float
    segment_flip: dict[str, float]
    axis_scale: np.ndarray
    tilt_deg: tuple[float, float, float]
    scale: tuple[float, float, float]
    world_noise_m: np.ndarray
    mask: dict[str, float | list[float]]
    crop: dict[str, list[float]]

    @classmethod
    def from_dict(cls, values: dict) -> "CalibratedModel":
        fields = {f.name for f in dataclasses.fields(cls)}
        missing, unknown = sorted(fields - set(values)), sorted(set(values) - fields)
        if missing or unknown:
            raise ValueError(f"simulator section: missing {missing}, unknown {unknown}")
        model = cls(**{
            **values,
            "offset": np.asarray(values["offset"], np.float64), "sigma": np.asarray(values["sigma"], np.float64),
            "visibility": {k: _probabilities(v) for k, v in values["visibility"].items()},
            "miss_rate": np.asarray(values["miss_rate"], np.float64), "world_noise_m": np.asarray(values["world_noise_m"], np.float64),
            "axis_scale": np.asarray(values["axis_scale"], np.float64),
            "tilt_deg": tuple(values["tilt_deg"]), "scale": tuple(values["scale"]),
        })  # fmt: skip
        model.validate()
        return model

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, np.ndarray):
                out[key] = np.round(value, 6).tolist()
            elif key == "visibility":
                out[key] = {k: np.round(v, 6).tolist() for k, v in value.items()}
        return out

    def validate(self) -> None:
        if self.offset.shape != (NUM_LANDMARKS, 2) or self.sigma.shape != (NUM_LANDMARKS, 2) or (self.sigma <= 0).any():
            raise ValueError("offset and sigma must be (33, 2), sigma > 0")
        if self.world_noise_m.shape != (NUM_LANDMARKS, 3) or self.axis_scale.shape != (2, 3):
            raise ValueError("world_noise_m must be (33, 3) and axis_scale (2, 3)")
        if sorted(self.visibility) != sorted(VISIBILITY_CATEGORIES):
            raise ValueError(f"visibility histograms must be {VISIBILITY_CATEGORIES}")
        rates = [*self.miss_rate, *self.swap.values(), self.world_follows_swap, self.torso_flip, *self.segment_flip.values(), self.outlier_rate]
        if not all(0.0 <= r <= 1.0 for r in rates) or len(self.miss_rate) != len(CUT_EDGES) + 1:
            raise ValueError("rates must lie in [0, 1] (miss_rate: one per cut bin)")
        if sorted(self.segment_flip) != sorted(SEGMENT_KINDS) or sorted(self.swap) != ["arms", "body", "legs"]:
            raise ValueError("segment_flip needs the SEGMENT_KINDS, swap needs body / arms / legs")


def _probabilities(values) -> np.ndarray:
    p = np.clip(np.asarray(values, np.float64), 0.0, None)
    if p.shape != (VISIBILITY_BINS,) or p.sum() <= 0:
        raise ValueError(f"a visibility histogram needs {VISIBILITY_BINS} non-negative bins")
    return p / p.sum()


def resolve(path: str) -> pathlib.Path:
    """A statistics file path as given, or relative to the repository root."""
    candidate = pathlib.Path(path)
    return candidate if candidate.is_file() or candidate.is_absolute() else REPO / candidate


@functools.lru_cache(maxsize=8)
def load_model(path: str) -> CalibratedModel:
    """The simulator section of a statistics file (cached per path)."""
    data = json.loads(resolve(path).read_text())
    if "simulator" not in data:
        raise ValueError(f"{path} has no simulator section: run python -m training.calibrate --fit {path}")
    return CalibratedModel.from_dict(data["simulator"])


def file_hash(data: dict) -> str:
    """sha256 of a statistics file's content without its ``hash`` key (canonical JSON)."""
    body = {k: v for k, v in data.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


# ------------------------------------------------------------------------------------------------
# The simulator
# ------------------------------------------------------------------------------------------------


def swap_order(rng: np.random.Generator, model: CalibratedModel) -> np.ndarray:
    """(33,) permutation of the landmark labels: a whole-body left/right swap or the arms' / legs'."""
    order = np.arange(NUM_LANDMARKS)
    draws = rng.random(3)
    if draws[0] < model.swap["body"]:
        return SWAP.copy()
    for draw, group in zip(draws[1:], ("arms", "legs")):
        if draw < model.swap[group]:
            left = np.asarray(SWAP_GROUPS[group])
            order[left], order[SWAP[left]] = SWAP[left], left
    return order


def draw_visibility(rng: np.random.Generator, category: np.ndarray, model: CalibratedModel) -> np.ndarray:
    """(33,) scores in [0, 1] from the histogram of each landmark's category (index into
    VISIBILITY_CATEGORIES)."""
    out = np.empty(len(category))
    u = rng.random((2, len(category)))
    for c, name in enumerate(VISIBILITY_CATEGORIES):
        cdf = np.cumsum(model.visibility[name])
        bins = np.minimum(np.searchsorted(cdf, u[0], side="right"), VISIBILITY_BINS - 1)
        out = np.where(category == c, (bins + u[1]) / VISIBILITY_BINS, out)
    return out


def keypoints(
    rng: np.random.Generator, gt_px: np.ndarray, visible: np.ndarray, in_frame: np.ndarray, height_px: float, model: CalibratedModel
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detector keypoints (33, 2) full-photo pixels, visibility (33,) and the label order (33,) for one
    sample. gt_px: (33, 2) true projections; visible: truly visible; in_frame: inside the photo."""
    up, lateral = body_frame(gt_px)
    basis = np.stack([lateral, up])  # rows: the body frame's axes in the image
    occluded = in_frame & ~visible
    factor = np.where(visible, 1.0, np.where(occluded, model.occluded_factor, model.out_of_frame_factor))
    scale = np.exp(rng.normal(0.0, model.sample_log_std))
    noise = rng.normal(0.0, 1.0, (NUM_LANDMARKS, 2)) * model.sigma * (factor * scale)[:, None]
    points = gt_px + ((model.offset + noise) @ basis) * height_px
    order = swap_order(rng, model)
    points = points[order]
    outlier = rng.random(NUM_LANDMARKS) < model.outlier_rate
    angle = rng.uniform(0, 2 * np.pi, NUM_LANDMARKS)
    jump = rng.uniform(0.05, 0.15, NUM_LANDMARKS) * height_px
    points += outlier[:, None] * np.stack([np.cos(angle), np.sin(angle)], 1) * jump[:, None]
    category = np.where(visible, 0, np.where(occluded, 1, 2))[order]
    return points.astype(np.float32), draw_visibility(rng, category, model).astype(np.float32), order


def world_keypoints(
    rng: np.random.Generator, landmarks_cam: np.ndarray, stature_m: float, camera_pitch_deg: float, order: np.ndarray,
    model: CalibratedModel,
) -> np.ndarray:
    """MediaPipe-like world landmarks (33, 3), metres, hip-centred, OpenCV camera axes (x right, y down,
    z away), from the true landmarks (33, 3) in the camera frame. camera_pitch_deg: how far the camera
    looks down (the tilt follows it); order: the 2D keypoints' label order."""
    points = hip_centred(landmarks_cam.astype(np.float64))
    draws = rng.random(3 + len(SEGMENTS))
    if draws[0] < model.world_follows_swap:
        points = points[order]
    if draws[1] < model.torso_flip:
        points[:, 2] = -points[:, 2]
    if draws[2] < model.segment_flip["spine"]:  # the upper body leans the other way (hips' midpoint at 0)
        points[list(UPPER_BODY), 2] -= points[L["left_shoulder"], 2] + points[L["right_shoulder"], 2]
    for draw, (name, (parent, child, moved)) in zip(draws[3:], SEGMENTS.items()):
        if draw < model.segment_flip[name.split("_", 1)[1]]:
            points[list(moved), 2] -= 2.0 * (points[child, 2] - points[parent, 2])
    points *= rng.normal(model.axis_scale[0], model.axis_scale[1])
    k, log_c, log_std = model.scale
    points *= np.exp(log_c + rng.normal(0.0, log_std)) * (1.7 / stature_m) ** k
    mean, std, slope = model.tilt_deg
    points = points @ rotation_x(np.radians(mean + slope * camera_pitch_deg + rng.normal(0.0, std))).T
    points += rng.normal(0.0, 1.0, points.shape) * model.world_noise_m
    return hip_centred(points).astype(np.float32)


def detected(rng: np.random.Generator, in_frame: np.ndarray, model: CalibratedModel) -> bool:
    """Whether the detector finds the person (misses depend on how much of the body the photo cuts)."""
    return bool(rng.random() >= model.miss_rate[cut_bin(in_frame)])


def mask(rng: np.random.Generator, clean: np.ndarray, inside_photo: np.ndarray, model: CalibratedModel) -> np.ndarray:
    """A soft (R, R) float32 person mask in [0, 1] from the clean silhouette (R, R) bool."""
    res = clean.shape[0]
    params = model.mask
    soft = cv2.GaussianBlur(clean.astype(np.float32), (0, 0), 1.5)
    field = cv2.resize(rng.normal(0.0, 1.0, (8, 8)).astype(np.float32), (res, res), interpolation=cv2.INTER_CUBIC)
    m = (soft + float(params["wobble"]) * field > 0.5 - float(params["shift"])).astype(np.float32)
    if rng.random() < float(params["blob_rate"]) and m.any():
        edge = m - cv2.erode(m, np.ones((3, 3), np.uint8))
        rows, cols = np.nonzero(edge if edge.any() else m)
        k = rng.integers(len(rows))
        blob = np.zeros_like(m)
        centre = (int(cols[k] + rng.normal(0, 4)), int(rows[k] + rng.normal(0, 4)))
        cv2.ellipse(blob, centre, (int(rng.uniform(3, 12)), int(rng.uniform(3, 12))), float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
        m = np.maximum(m, blob) if rng.random() < 0.5 else m * (1.0 - blob)
    m = cv2.GaussianBlur(m, (0, 0), rng.uniform(*params["blur"]))
    return np.where(inside_photo, np.clip(m, 0.0, 1.0), 0.0).astype(np.float32)


def crop_box(rng: np.random.Generator, true_center: np.ndarray, true_side: float, model: CalibratedModel) -> tuple[np.ndarray, float]:
    """The detector's crop (centre (2,), side) around the true person's crop (centre, side): full pixels."""
    c = model.crop
    offset = rng.normal(np.asarray(c["center_mean"]), np.asarray(c["center_std"])) * true_side
    side = true_side * np.exp(rng.normal(c["log_side"][0], c["log_side"][1]))
    return np.asarray(true_center, np.float64) + offset, float(side)
