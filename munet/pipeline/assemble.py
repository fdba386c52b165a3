"""The stages' records -> the ``Reconstruction`` and its ``ReconstructionReport``: the one place both are built."""

from __future__ import annotations

import dataclasses

import numpy as np

from munet.detect import LoadedImage
from munet.fitting.clothing import ClothingResult
from munet.pipeline.stages import Detected, Fitted, Initialised, Refined, Rig, Textured
from munet.reconstruction import Camera, Reconstruction, ReconstructOptions, SkinnedSurface
from munet.report import (AlignmentReport, CameraReport, ClothedMeshReport, DepthReport, DetectorReport, ImageReport,
                          MeshReport, NetworkReport, ReconstructionReport, SkeletonReport, TextureReport, Timings)


@dataclasses.dataclass(frozen=True)
class StageRecords:
    """Every stage's record for one photo (clothing None when not asked), the options it ran with, the notes
    on what ran differently from what was asked, the body model's shape labels and the stage timings."""

    options: ReconstructOptions
    notes: tuple[str, ...]
    shape_labels: tuple[str, ...]
    detected: Detected
    initialised: Initialised
    fitted: Fitted
    refined: Refined
    clothing: ClothingResult | None
    rig: Rig
    textured: Textured
    alignment: AlignmentReport
    depth: DepthReport
    timings: Timings


def assemble(records: StageRecords) -> Reconstruction:
    """The ``Reconstruction``: the body and clothed surfaces on the rig, the camera, texture and report."""
    rig, refined, uv = records.rig, records.refined, records.textured.uv_per_corner
    body = SkinnedSurface(rest_vertices_m=rig.rest_vertices_m, posed_vertices_m=rig.posed_vertices_m,
                          faces=refined.faces, skin=rig.skin, uv_per_corner=uv)
    clothed = None
    if records.clothing is not None:
        clothed = SkinnedSurface(rest_vertices_m=records.clothing.rest_vertices_m,
                                 posed_vertices_m=rig.clothed_posed_vertices_m, faces=refined.faces,
                                 skin=rig.clothed_skin if rig.clothed_skin is not None else rig.skin,
                                 uv_per_corner=uv)
    return Reconstruction(
        body=body,
        clothed=clothed,
        skeleton=rig.skeleton,
        pose_axis_angle=rig.pose_axis_angle,
        root_translation_m=refined.state.translation_m[0].numpy().astype(np.float32),
        shape=refined.state.shape[0].numpy().astype(np.float32),
        body_model=records.options.body_model,
        camera=_photo_camera(refined.camera, records.detected.image),
        texture=records.textured.texture,
        report=build_report(records),
    )


def build_report(records: StageRecords) -> ReconstructionReport:
    """The report of one reconstruction (see ``munet.report``), values rounded as reported."""
    detected, refined, rig = records.detected, records.refined, records.rig
    loaded, detection, targets = detected.image, detected.detection, detected.targets
    shape = refined.state.shape[0].numpy().astype(np.float32)
    faces = refined.faces
    notes = records.notes
    if detection.unseen_parts:
        notes += ("not seen in the photo: " + ", ".join(detection.unseen_parts)
                  + " (held by the pose prior: a relaxed standing pose on the floor)",)
    texture = records.textured.texture
    if loaded.size != loaded.original_size:
        notes += (f"the {loaded.original_width}x{loaded.original_height} photo was decoded at {loaded.width}x"
                  f"{loaded.height}: the detector's and alignment's pixels are at that size, the camera's at the "
                  "photo's",)
    return ReconstructionReport(
        method="network" if records.initialised.network is not None else "fitting",
        notes=notes,
        image=ImageReport(loaded.original_width, loaded.original_height, loaded.format, loaded.orientation),
        detector=DetectorReport.from_json(detection.report()),
        facing="away from the camera" if targets.facing_away else "towards the camera",
        feet_on_floor=dict(targets.contact),
        body_model=records.options.body_model,
        shape=_labelled(records.shape_labels, shape),
        standing_height_m=round(float(refined.rest_vertices_m[:, 2].max()), 3),
        skeleton=SkeletonReport(rig.skeleton.name, tuple(rig.skeleton.joint_names)),
        body_mesh=MeshReport(int(refined.rest_vertices_m.shape[0]), int(faces.shape[0])),
        clothed_mesh=_clothed_mesh(records.clothing, faces),
        camera=_camera(detected, refined),
        timings_ms=records.timings,
        alignment=records.alignment,
        depth=records.depth,
        unseen_parts=tuple(detection.unseen_parts),
        texture=None if texture is None else TextureReport(texture.width, texture.height, texture.mime_type),
        network=_network(records.initialised, targets.shape_prior, records.shape_labels),
    )


def _photo_camera(camera: Camera, loaded: LoadedImage) -> Camera:
    """``camera`` (pixels of the decoded working image) in pixels of the photo itself."""
    if loaded.size == loaded.original_size:
        return camera
    sx, sy = loaded.scale
    (fx, fy), (cx, cy) = camera.focal_px, camera.principal_point_px
    return dataclasses.replace(camera, focal_px=(fx / sx, fy / sy), principal_point_px=(cx / sx, cy / sy),
                               image_size=loaded.original_size)


def _labelled(labels: tuple[str, ...], values) -> dict[str, float]:
    return {k: round(float(v), 4) for k, v in zip(labels, values)}


def _clothed_mesh(clothing: ClothingResult | None, faces: np.ndarray) -> ClothedMeshReport | None:
    if clothing is None:
        return None
    return ClothedMeshReport(int(clothing.rest_vertices_m.shape[0]), int(faces.shape[0]),
                             round(float(clothing.offsets_m.max()), 4), round(float(clothing.offsets_m.mean()), 4),
                             clothing.garments)


def _camera(detected: Detected, refined: Refined) -> CameraReport:
    return CameraReport(focal_px=round(refined.camera.focal_px[0], 2), focal_prior_px=round(detected.focal_prior_px, 2),
                        focal_source=detected.focal_source, pitch_deg=round(float(np.degrees(refined.pitch_rad)), 2),
                        height_m=round(refined.camera_height_m, 3))


def _network(initialised: Initialised, shape_prior: np.ndarray | None, labels: tuple[str, ...]) -> NetworkReport | None:
    if initialised.network is None:
        return None
    return NetworkReport(checkpoint=initialised.checkpoint, forward_ms=round(initialised.network.forward_ms, 2),
                         shape=None if shape_prior is None else _labelled(labels, shape_prior))
