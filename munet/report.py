"""The reconstruction report: typed, frozen records with ``to_json() -> dict`` (plain JSON data).

``ReconstructionReport`` is what ``munet.pipeline`` returns in ``Reconstruction.report``; it is built in
one place (``munet.pipeline.assemble``). Each record's fields are its JSON keys, in order, with the values
already rounded as reported; ``to_json`` only converts (tuples and arrays to lists, records to maps) and
leaves out the fields named in ``_OMIT_NONE`` when they are None. The JSON is what the CLI writes
(``--report``), the NPZ carries (``report_json``) and the server sends (``report``), so its keys are a
contract with the add-on and other clients: change them together with PROTOCOL.md.

``PlainReport`` holds a report that is already JSON (one received over the wire, or a test double's).
No torch here: clients import this module.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any, ClassVar, Mapping

import numpy as np


def _plain(value: Any) -> Any:
    """A report value as plain JSON data."""
    if isinstance(value, _Record):
        return value.to_json()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


class _Record:
    """Base of the report records: fields -> JSON keys in order, None fields in ``_OMIT_NONE`` left out."""

    _OMIT_NONE: ClassVar[tuple[str, ...]] = ()

    def to_json(self) -> dict:
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)
                if not (f.name in self._OMIT_NONE and getattr(self, f.name) is None)}


# ---- photo and detector ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ImageReport(_Record):
    """The decoded photo: pixels after EXIF orientation, the decoder's format name, the orientation tag."""

    width: int
    height: int
    format: str
    exif_orientation: int


@dataclasses.dataclass(frozen=True)
class DetectorReport(_Record):
    """MediaPipe's detection: image_size (width, height), confidence in [0, 1], person_box_px (x0, y0, x1,
    y1), the body parts not seen, the number of landmarks seen (of 33)."""

    image_size: tuple[int, int]
    confidence: float
    person_box_px: tuple[float, float, float, float]
    unseen_parts: tuple[str, ...]
    seen_keypoints: int

    @classmethod
    def from_json(cls, data: Mapping) -> "DetectorReport":
        """From ``munet.detect.Detection.report()`` (the detector's own JSON summary)."""
        return cls(tuple(data["image_size"]), data["confidence"], tuple(data["person_box_px"]),
                   tuple(data["unseen_parts"]), data["seen_keypoints"])


# ---- body, meshes, camera ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SkeletonReport(_Record):
    name: str
    joint_names: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class MeshReport(_Record):
    vertices: int
    faces: int


@dataclasses.dataclass(frozen=True)
class GarmentReport(_Record):
    """What the clothing stage saw in the photo (``munet.fitting.garments``, ``munet.fitting.hair``).

    garment: ``"trousers"``, ``"shorts"``, ``"skirt"``, ``"dress"`` (these two are closed round both legs
    down to the hem; a long coat reads as a dress) or ``"unseen"`` (the legs are out of the photo); hem_leg_u: the hem on
    the leg (0 hip joint, 1 knee, 2 ankle), None when not loose; garment_evidence: the numbers the decision
    used (levels down the legs with a gap between the body's legs, how many the mask bridges, the flare
    beyond the body, colour distances); hair: ``"none"``, ``"short"``, ``"long"`` or ``"unseen"``;
    hair_evidence: the mask's reach beyond the bald head on top, at the sides and beside the neck (cm), the
    vertices measured and the colour distances. NaN reads None.
    """

    garment: str
    hem_leg_u: float | None
    garment_evidence: dict[str, Any]
    hair: str
    hair_evidence: dict[str, Any]

    @classmethod
    def of(cls, garment: str, hem_u: float | None, garment_evidence: Mapping, hair: str,
           hair_evidence: Mapping) -> "GarmentReport":
        return cls(garment, hem_u, _finite(garment_evidence), hair, _finite(hair_evidence))


def _finite(values: Mapping) -> dict[str, Any]:
    """A copy with NaN and infinite floats as None (JSON has no NaN)."""
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in values.items()}


@dataclasses.dataclass(frozen=True)
class ClothedMeshReport(_Record):
    """The clothed surface's size, its offsets from the body (metres) and what it wears (None: not built)."""

    _OMIT_NONE: ClassVar[tuple[str, ...]] = ("garments",)

    vertices: int
    faces: int
    max_offset_m: float
    mean_offset_m: float
    garments: GarmentReport | None = None


@dataclasses.dataclass(frozen=True)
class CameraReport(_Record):
    """focal_px: the fitted focal; focal_prior_px: the prior it started from; focal_source: ``"exif"`` or
    ``"estimated"``; pitch_deg: downward tilt; height_m: the camera's height above the floor."""

    focal_px: float
    focal_prior_px: float
    focal_source: str
    pitch_deg: float
    height_m: float


@dataclasses.dataclass(frozen=True)
class TextureReport(_Record):
    width: int
    height: int
    mime_type: str


@dataclasses.dataclass(frozen=True)
class NetworkReport(_Record):
    """The MuNet checkpoint used, its forward time and the shape of its body (label -> value), when fitted."""

    checkpoint: str
    forward_ms: float
    shape: dict[str, float] | None


# ---- timings and alignment -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Timings(_Record):
    """Milliseconds per stage run (in order), the total, and the export's when the CLI wrote files.

    JSON: ``{stage: ms, ..., "total": ms[, "export": ms]}``; with the export, total includes it."""

    stages_ms: dict[str, float]
    total_ms: float
    export_ms: float | None = None

    def with_export(self, export_ms: float) -> "Timings":
        export_ms = round(export_ms, 1)
        return dataclasses.replace(self, export_ms=export_ms, total_ms=round(self.total_ms + export_ms, 1))

    def to_json(self) -> dict:
        out = {**self.stages_ms, "total": self.total_ms}
        if self.export_ms is not None:
            out["export"] = self.export_ms
        return out


@dataclasses.dataclass(frozen=True)
class AlignmentReport(_Record):
    """2D alignment of the final surfaces with the photo.

    body_iou / clothed_iou: silhouette IoU against the detector's mask (clothed_iou None without the
    clothed surface). keypoint_error_px: mean 2D error over the scored landmarks (the face is not scored
    when the person faces away); keypoint_error_fraction: the same over the person's height in pixels;
    keypoint_error_all_seen_px: over every seen landmark. model_keypoints_px: (33, 2) float64, the body's
    MediaPipe landmarks projected into the photo, pixels rounded to 0.1 (drawn by the preview).
    """

    _OMIT_NONE: ClassVar[tuple[str, ...]] = ("clothed_iou",)

    body_iou: float
    clothed_iou: float | None
    keypoint_error_px: float
    keypoint_error_fraction: float
    keypoint_error_all_seen_px: float
    keypoints_scored: int
    person_height_px: float
    model_keypoints_px: np.ndarray


# ---- depth ------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LegDepths(_Record):
    """The result's leg depths: camera depth (metres) of hips, knees and ankles, left-minus-right
    differences, which way the torso faces, and which knee and ankle are farther (left, right, same)."""

    left_hip_depth_m: float
    right_hip_depth_m: float
    left_knee_depth_m: float
    right_knee_depth_m: float
    left_ankle_depth_m: float
    right_ankle_depth_m: float
    left_knee_minus_right_knee_m: float
    left_ankle_minus_right_ankle_m: float
    torso_faces: str
    farther_knee: str
    farther_ankle: str


@dataclasses.dataclass(frozen=True)
class GroundPlaneVote(_Record):
    """The foot whose floor contact is higher in the photo is farther; contact_row_px: side -> row."""

    farther_foot: str
    contact_row_px: dict[str, float]


@dataclasses.dataclass(frozen=True)
class LegOrderVote(_Record):
    farther_knee: str
    farther_ankle: str


@dataclasses.dataclass(frozen=True)
class FootDirection(_Record):
    """heel -> toe in the photo (pixels) and where the toe points: away, towards or sideways."""

    heel_to_toe_px: tuple[float, float]
    toe_points: str


@dataclasses.dataclass(frozen=True)
class DepthCues(_Record):
    """Each cue's vote on the leg depth order; None where the cue cannot see (left out of the JSON)."""

    _OMIT_NONE: ClassVar[tuple[str, ...]] = ("ground_plane", "mediapipe_world", "mediapipe_image_depth",
                                             "foot_direction")

    ground_plane: GroundPlaneVote | None = None
    mediapipe_world: LegOrderVote | None = None
    mediapipe_image_depth: LegOrderVote | None = None
    foot_direction: dict[str, FootDirection] | None = None


@dataclasses.dataclass(frozen=True)
class CueAgreement(_Record):
    """Per cue that voted, whether the result agrees with it (None: the cue did not vote)."""

    _OMIT_NONE: ClassVar[tuple[str, ...]] = ("ground_plane", "mediapipe_world", "mediapipe_image_depth")

    ground_plane: bool | None = None
    mediapipe_world: bool | None = None
    mediapipe_image_depth: bool | None = None

    def voted(self) -> dict[str, bool]:
        """Cue name -> agrees, for the cues that voted."""
        return self.to_json()


@dataclasses.dataclass(frozen=True)
class Hypothesis(_Record):
    """One fitted candidate (depth hypothesis): its name, final loss and loss terms."""

    name: str
    total: float
    terms: dict[str, float]


@dataclasses.dataclass(frozen=True)
class WithoutGround(_Record):
    """The best candidate fitted without the floor term: its leg depth differences (metres), its name,
    and whether the leg depth order differs from the result's."""

    left_knee_minus_right_knee_m: float
    left_ankle_minus_right_ankle_m: float
    hypothesis: str
    changes_the_result: bool


@dataclasses.dataclass(frozen=True)
class DepthReport(_Record):
    """What each depth cue says about the legs and which one the result follows (``munet.fitting.depth``).

    hypotheses: the candidates, best first; deciding_cue: ``"ground_plane"``, ``"network"``,
    ``"keypoints_and_priors"`` or None (no no-floor fit ran); summary: one sentence for people.
    """

    final: LegDepths
    cues: DepthCues
    agreement: CueAgreement
    hypotheses: tuple[Hypothesis, ...]
    chosen_hypothesis: str
    deciding_cue: str | None
    without_ground: WithoutGround | None
    summary: str


# ---- the report ------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ReconstructionReport(_Record):
    """Facts about one reconstruction: what ran, what the photo showed, timings, alignment, depth.

    method: ``"network"`` or ``"fitting"`` (the one that ran); notes: where it ran differently from what
    was asked, and what the photo did not show; facing: ``"towards the camera"`` or ``"away from the
    camera"``; feet_on_floor: side -> touches the floor; shape: label -> value of the body model's shape
    (Anny: phenotypes; SMPL: betas); standing_height_m: the rest pose's height; clothed_mesh, texture: None
    when not built; network: None (left out of the JSON) when the network did not run.
    """

    _OMIT_NONE: ClassVar[tuple[str, ...]] = ("network",)

    method: str
    notes: tuple[str, ...]
    image: ImageReport
    detector: DetectorReport
    facing: str
    feet_on_floor: dict[str, bool]
    body_model: str
    shape: dict[str, float]
    standing_height_m: float
    skeleton: SkeletonReport
    body_mesh: MeshReport
    clothed_mesh: ClothedMeshReport | None
    camera: CameraReport
    timings_ms: Timings
    alignment: AlignmentReport
    depth: DepthReport
    unseen_parts: tuple[str, ...]
    texture: TextureReport | None
    network: NetworkReport | None = None

    def with_export_ms(self, export_ms: float) -> "ReconstructionReport":
        """This report with the export's time added to the timings (and to their total)."""
        return dataclasses.replace(self, timings_ms=self.timings_ms.with_export(export_ms))


@dataclasses.dataclass(frozen=True)
class PlainReport:
    """A report that is already JSON: one received from a server, or a test double's."""

    data: dict

    def to_json(self) -> dict:
        return copy.deepcopy(self.data)


__all__ = [
    "AlignmentReport", "CameraReport", "ClothedMeshReport", "CueAgreement", "DepthCues", "DepthReport",
    "DetectorReport", "FootDirection", "GarmentReport", "GroundPlaneVote", "Hypothesis", "ImageReport", "LegDepths",
    "LegOrderVote", "MeshReport", "NetworkReport", "PlainReport", "ReconstructionReport", "SkeletonReport",
    "TextureReport", "Timings", "WithoutGround",
]
