"""The reconstruction's stages: small functions, each taking the records of the stages before it and
returning its own typed record. ``Pipeline`` (``munet.pipeline.runner``) calls them in order, timing each;
``munet.pipeline.assemble`` turns their records into the ``Reconstruction`` and its report.

==============  =========================================================  ==============================
stage           function                                                   returns
==============  =========================================================  ==============================
detect          ``detect(image, detector)``                                ``Detected``
initialise      ``initialise(detected, fitter, initialiser, network)``     ``Initialised``
fit             ``fit(detected, initialised, fitter, explain_depth)``      ``Fitted``
refine          ``refine(detected, initialised, fitted, fitter, body, n)`` ``Refined``
clothing        ``fit_clothes(body, detected, initialised, refined, op)``  ``ClothingResult``
rig             ``build_rig(body, full_body, refined, clothing)``          ``Rig``
texture         ``project_photo(detected, refined, clothing, body, size)`` ``Textured``
metrics         ``measure_alignment(...)``, ``measure_depth(...)``         ``AlignmentReport``, ``DepthReport``
==============  =========================================================  ==============================

Torch tensors stay inside ``Initialised``/``Fitted``/``Refined`` (the fit's state); everything from
``Rig`` on is numpy, as the ``Reconstruction`` carries it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from munet.body.base import BodyModel, BodyOutput
from munet.detect import Detection, LoadedImage
from munet.fitting.body_fit import BodyFitter, FitState
from munet.fitting.clothing import ClothingResult
from munet.fitting.depth import NoFloorFit
from munet.fitting.network_init import NetworkInitialiser, NetworkPrediction
from munet.fitting.state import FitTargets
from munet.reconstruction import Camera, Skeleton, SkinWeights, Texture
from munet.report import AlignmentReport, DepthReport, Hypothesis

FIT_ITERATIONS = 25
"""Iterations of the batched candidate fit (stage ``fit``); ``refine_iterations`` drives ``refine``."""


# ---- detect ------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Detected:
    """The photo, MediaPipe's detection of the person and the fit targets taken from it.

    targets is mutable: ``initialise`` sets its world keypoints and shape prior (from the network) and
    its ``scale_px``. focal_prior_px: the focal length the fit starts from (EXIF or estimated), pixels;
    focal_source: ``"exif"`` or ``"estimated"``.
    """

    image: LoadedImage
    detection: Detection
    targets: FitTargets
    focal_prior_px: float
    focal_source: str


def detect(image, detector) -> Detected:
    """Decode the photo (bytes, path, array or ``LoadedImage``), run the detector, take the fit targets."""
    from munet.detect import load_image
    from munet.fitting import camera as cam
    from munet.fitting.targets import targets_from_detection

    loaded = image if isinstance(image, LoadedImage) else load_image(image)
    detection = detector.detect(loaded)
    focal_prior, source = cam.focal_px(loaded.width, loaded.height, loaded.focal_px_from_exif)
    sigma = cam.EXIF_FOCAL_LOG_SIGMA if source == "exif" else cam.FOCAL_LOG_SIGMA
    targets = targets_from_detection(detection, focal_prior, focal_log_sigma=sigma)
    return Detected(loaded, detection, targets, focal_prior, "exif" if source == "exif" else "estimated")


# ---- initialise --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Initialised:
    """Where the fit starts: state, a ``FitState`` of B >= 1 candidates; network: MuNet's prediction and
    checkpoint when the network ran (None otherwise)."""

    state: FitState
    network: NetworkPrediction | None = None
    checkpoint: str | None = None


def initialise(detected: Detected, fitter: BodyFitter, initialiser, network: NetworkInitialiser | None) -> Initialised:
    """Starting candidates from the network when given, else from ``initialiser``
    (``munet.fitting.keypoint_init.Initialiser``); then the person's height in pixels for the 2D terms."""
    targets = detected.targets
    if network is not None:
        state = network(targets, fitter, detection=detected.detection)
        started = Initialised(state, network.last, network.path)
    else:
        started = Initialised(initialiser(targets, fitter))
    targets.scale_px = _person_height_px(fitter, started.state, targets)
    targets.cache.clear()
    return started


def _person_height_px(fitter: BodyFitter, state: FitState, targets: FitTargets) -> float:
    """The person's standing height in pixels at their distance, from the first candidate."""
    from munet.fitting import camera as cam

    with torch.no_grad():
        first = state.select(0)
        _, joints = fitter.landmarks_and_joints(first)
        _, depth = cam.project(joints[:, :1], first.pitch_rad, first.height_m, targets.focal_px, targets.principal_px)
        rest_v, _ = fitter.body.rest(first.shape.to(fitter.body.dense_weights.dtype))
    standing = float(rest_v[0, :, 2].max())
    return standing * targets.focal_px / max(float(depth[0, 0]), 0.1)


# ---- fit -----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Fitted:
    """The best candidate of the batched fit.

    state: ``FitState`` (B = 1); hypotheses: every candidate's final loss and terms (fit order); chosen:
    the kept candidate's name; without_ground: the best candidate fitted without the floor term, when
    that check ran (feet seen on the floor).
    """

    state: FitState
    hypotheses: tuple[Hypothesis, ...]
    chosen: str
    without_ground: NoFloorFit | None


def fit(detected: Detected, initialised: Initialised, fitter: BodyFitter, explain_depth: bool,
        iterations: int = FIT_ITERATIONS) -> Fitted:
    """Fit every candidate to the 2D keypoints, floor, world-keypoint directions and pose priors; keep the
    best. With ``explain_depth`` and the feet seen on the floor, the same candidates also run without the
    floor term, in the same batch, so the report can say whether the ground plane decided the legs' depth."""
    from munet.fitting.depth import cue_votes, leg_depth_differences

    targets, state = detected.targets, initialised.state
    check_depth = explain_depth and cue_votes(detected.detection, targets).ground_plane is not None
    batch = state.batch
    if check_depth:  # the same candidates once more, without the floor term, in the same batch
        ablated = dataclasses.replace(state, names=[f"{n} (no floor)" for n in state.names])
        scale = torch.cat([torch.ones(batch), torch.zeros(batch)])
        fitted = fitter.fit(targets, state.cat(ablated), iterations, group_scale={"ground": scale})
    else:
        fitted = fitter.fit(targets, state, iterations)
    totals = fitted.total()
    best = int(torch.argmin(totals[:batch]))
    hypotheses = tuple(Hypothesis(n, float(totals[b]), {k: float(v[b]) for k, v in fitted.terms.items()})
                       for b, n in enumerate(fitted.names[:batch]))
    without_ground = None
    if check_depth:
        best_ablated = batch + int(torch.argmin(totals[batch:]))
        knee, ankle = leg_depth_differences(fitter, targets, fitted.state.select(best_ablated))[0]
        without_ground = NoFloorFit(knee, ankle, state.names[best_ablated - batch])
    return Fitted(fitted.state.select(best), hypotheses, fitted.names[best], without_ground)


# ---- refine ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Refined:
    """The final body on the smpl24 skeleton and the camera it projects through.

    state: ``FitState`` (B = 1). posed: ``BodyOutput``, batch of one, the body model's dtype;
    local_rotations: (1, 24, 3, 3) per-joint rotations relative to the parent. pitch_rad, camera_height_m:
    the camera's downward tilt and height above the floor (metres). rest_vertices_m / posed_vertices_m:
    (V, 3) float32, metres, world frame; faces: (F, 3) int32.
    """

    state: FitState
    posed: BodyOutput
    local_rotations: torch.Tensor
    camera: Camera
    pitch_rad: float
    camera_height_m: float
    rest_vertices_m: np.ndarray
    posed_vertices_m: np.ndarray
    faces: np.ndarray


def refine(detected: Detected, initialised: Initialised, fitted: Fitted, fitter: BodyFitter, body: BodyModel,
           iterations: int) -> Refined:
    """Refine the kept body against keypoints + silhouette, shape free, for ``iterations`` (0: skip); pose
    the full mesh and build the camera. After the network, the refinement moves only what the photo sees:
    every landmark's and a spread of vertices' depth relative to the hips stays near the network's body
    (``body_fit.DepthAnchor``, weights ``network_init.refine_weights``), so the 2D and silhouette terms cannot
    undo its 3D. Legs included: an earlier exception left a standing leg to the photo (the floor) when the
    ``fit`` stage had ordered the knees or ankles in depth the other way from the network; it fired on 22 % of
    the validation photos and, there, the network was the better judge (depth order 0.880 with the exception,
    0.896 without; PA-MPJPE 71.4 against 67.0 mm)."""
    from munet.fitting import camera as cam
    from munet.fitting.body_fit import full_body
    from munet.fitting.network_init import REFINE_SHAPE_ITERATIONS, refine_weights

    state = fitted.state
    if iterations > 0:
        weights, anchor, shape_iterations = None, None, None
        if initialised.network is not None:
            weights = refine_weights(fitter.weights)
            anchor = fitter.depth_anchor(initialised.network.body_cam)
            shape_iterations = REFINE_SHAPE_ITERATIONS
        state = fitter.fit(detected.targets, state, iterations, silhouette=True, fit_shape=True, weights=weights,
                           anchor=anchor, shape_iterations=shape_iterations).state
    posed, rotations = full_body(body, state)
    pitch, height = float(state.pitch_rad[0]), float(state.height_m[0])
    focal = float(state.focal_px(detected.focal_prior_px)[0])
    R, t = cam.camera_extrinsics(pitch, height)
    targets = detected.targets
    camera = Camera(focal_px=(focal, focal), principal_point_px=targets.principal_px, image_size=targets.image_size,
                    R_world_to_cam=R, t_world_to_cam_m=t)
    return Refined(
        state=state, posed=posed, local_rotations=rotations, camera=camera, pitch_rad=pitch, camera_height_m=height,
        rest_vertices_m=posed.rest_vertices_m[0].numpy().astype(np.float32),
        posed_vertices_m=posed.vertices_m[0].numpy().astype(np.float32),
        faces=body.faces.numpy().astype(np.int32),
    )


# ---- clothing --------------------------------------------------------------------------------------------


def fit_clothes(body: BodyModel, detected: Detected, initialised: Initialised, refined: Refined,
                operator) -> ClothingResult:
    """The clothed surface: offsets measured in the photo's pose and regularised on the rest surface per
    body region (``munet.fitting.clothing``), seeded with the network's clothed surface when it predicted
    one; then hair (``munet.fitting.hair``) and a skirt, dress or long coat closed round both legs
    (``munet.fitting.garments``). operator: the body topology's ``mean_neighbour_operator``."""
    from munet.fitting.clothing import (CAP_SMOOTHING_ITERATIONS, contact_caps, finish_offsets, fit_offsets,
                                        part_caps, region_caps)
    from munet.fitting.garments import dress
    from munet.fitting.hair import HairPhoto, fit_hair
    from munet.fitting.regions import body_regions
    from munet.geometry.mesh import smooth_field, vertex_normals

    regions = body_regions(body)
    rest_v, posed_v, faces = refined.rest_vertices_m, refined.posed_vertices_m, refined.faces
    dense = body.dense_weights.numpy()
    normals = vertex_normals(rest_v, faces).astype(np.float64)
    caps = region_caps(dense, tuple(body.joint_names), normals)
    caps = part_caps(smooth_field(caps, operator, CAP_SMOOTHING_ITERATIONS), regions)  # no steps between regions
    caps = np.minimum(caps, contact_caps(rest_v, regions))  # one limb's clothes never enter another limb
    skin_rotations = np.einsum("vj,jab->vab", dense, refined.posed.global_rotations[0].numpy())
    field = fit_offsets(posed_v, rest_v, faces, refined.camera, detected.targets.mask, caps, skin_rotations,
                        operator=operator, regions=regions, rest_normals=normals,
                        initial_m=_network_offsets(initialised, refined, skin_rotations, normals))
    hair = fit_hair(field, regions, operator,
                    HairPhoto(detected.image.rgb, detected.targets.mask, refined.camera, posed_v,
                              bool(detected.targets.facing_away)))
    offsets = finish_offsets(field, hair.offsets_m, hair.caps_m, regions, rest_v, faces, operator)
    return dress(body, detected, refined, regions, field, dataclasses.replace(hair, offsets_m=offsets), operator)


def _network_offsets(initialised: Initialised, refined: Refined, skin_rotations: np.ndarray,
                     rest_normals: np.ndarray) -> np.ndarray | None:
    """(V,) the network clothed stage's offsets as lengths along the body's rest normals (>= 0), or None.

    Its offsets (camera frame) -> world -> rest: LBS(rest + d) = LBS(rest) + M d with M the vertex's blended
    rotation, so the rest offset is M^-1 d; only its part along the rest normal is kept (a sideways part
    would slide the surface over the body). rest_normals: (V, 3) the rest body's vertex normals."""
    network = initialised.network
    if network is None or network.clothed_cam is None:
        return None
    seed = (network.clothed_cam - network.body_cam) @ refined.camera.R_world_to_cam
    rest_offsets = np.linalg.solve(skin_rotations.astype(np.float64), seed.astype(np.float64)[..., None])[..., 0]
    return np.maximum((rest_offsets * rest_normals).sum(1), 0.0)


# ---- rig ----------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Rig:
    """The result on the requested skeleton.

    pose_axis_angle: (J, 3) float32 local rotations (radians); rest_vertices_m / posed_vertices_m: (V, 3)
    float32 body, world frame; clothed_posed_vertices_m: (V, 3) float32, the clothed rest surface posed on
    this skeleton (None without clothing); clothed_skin: the clothed surface's own weights when they differ
    from the body's (a skirt blends its vertices between the pelvis and both thighs), else None.
    """

    skeleton: Skeleton
    pose_axis_angle: np.ndarray
    skin: SkinWeights
    rest_vertices_m: np.ndarray
    posed_vertices_m: np.ndarray
    clothed_posed_vertices_m: np.ndarray | None
    clothed_skin: SkinWeights | None = None


def build_rig(body: BodyModel, full_body: BodyModel | None, refined: Refined,
              clothing: ClothingResult | None) -> Rig:
    """Skeleton, pose, skin and vertices: smpl24 (``full_body`` None) or the full skeleton of ``full_body``
    (``munet.fitting.rig``), the clothed surface posed on it by the same skinning."""
    from munet.geometry.rotations import matrix_to_axis_angle

    posed = refined.posed
    if full_body is None:
        return Rig(
            skeleton=body.skeleton(posed.rest_joints_m[0]),
            pose_axis_angle=matrix_to_axis_angle(refined.local_rotations[0]).numpy().astype(np.float32),
            skin=body.skin_weights(), rest_vertices_m=refined.rest_vertices_m,
            posed_vertices_m=refined.posed_vertices_m,
            clothed_posed_vertices_m=None if clothing is None else clothing.posed_vertices_m,
            clothed_skin=_clothed_skin(clothing, None),
        )
    return _full_rig(full_body, refined, clothing)


def _clothed_skin(clothing: ClothingResult | None, full: BodyModel | None) -> SkinWeights | None:
    """The clothed surface's own skin (smpl24, or on ``full``'s skeleton), None when it is the body's."""
    from munet.fitting.skirt import blended_weights, sparse_skin

    if clothing is None or clothing.skin_dense is None:
        return None
    if full is None:
        return sparse_skin(clothing.skin_dense)
    return sparse_skin(blended_weights(full.dense_weights.numpy(), clothing.skirt_blend, tuple(full.joint_names)))


def _full_rig(full: BodyModel, refined: Refined, clothing: ClothingResult | None) -> Rig:
    """The smpl24 fit expressed on the full skeleton; the clothed rest surface posed by its LBS."""
    from munet.body.lbs import skin_vertices
    from munet.geometry.rotations import matrix_to_axis_angle
    from munet.fitting.rig import full_local_rotations

    dtype = full.dense_weights.dtype
    translation = refined.state.translation_m[:1].to(dtype)
    with torch.no_grad():
        rest_v, rest_j = full.rest(refined.state.shape[:1].to(dtype))
        local = full_local_rotations(full, refined.posed.global_rotations)
        out = full.pose_rotations(rest_v, rest_j, local, translation)
        clothed, clothed_skin = None, _clothed_skin(clothing, full)
        if clothing is not None:
            weights = full.dense_weights if clothed_skin is None else torch.from_numpy(
                clothed_skin.dense(len(full.joint_names))).to(dtype)
            posed_surface = skin_vertices(torch.from_numpy(clothing.rest_vertices_m)[None].to(dtype), rest_j,
                                          out.global_rotations, out.joints_m - translation[:, None], weights)
            clothed = (posed_surface + translation[:, None])[0].numpy().astype(np.float32)
    return Rig(
        skeleton=full.skeleton(rest_j[0]),
        pose_axis_angle=matrix_to_axis_angle(local[0]).numpy().astype(np.float32),
        skin=full.skin_weights(),
        rest_vertices_m=rest_v[0].numpy().astype(np.float32),
        posed_vertices_m=out.vertices_m[0].numpy().astype(np.float32),
        clothed_posed_vertices_m=clothed,
        clothed_skin=clothed_skin,
    )


# ---- texture -------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Textured:
    """The photo projected onto the surface: texture and (F, 3, 2) float32 uv per face corner (None: no
    texture asked)."""

    texture: Texture | None = None
    uv_per_corner: np.ndarray | None = None


def project_photo(detected: Detected, refined: Refined, clothing: ClothingResult | None,
                  body: BodyModel | None = None, size: int | None = None) -> Textured:
    """The photo onto the clothed surface (the body without clothing): a texture atlas baked in the body
    model's own UV layout (``munet.texture.bake_texture``; Anny), or, for a model without UVs (SMPL here) or
    no ``body`` given, the photo projected onto the visible front (``munet.texture.project_texture``).
    size: the atlas side in pixels (default ``munet.texture.DEFAULT_SIZE``)."""
    from munet.texture import DEFAULT_SIZE, bake_texture, project_texture, uv_atlas

    surface = clothing.posed_vertices_m if clothing is not None else refined.posed_vertices_m
    atlas = uv_atlas(body) if body is not None else None
    if atlas is not None:
        baked = bake_texture(detected.image.rgb, atlas, surface, refined.camera, detected.targets.mask,
                             size or DEFAULT_SIZE)
        return Textured(baked.texture, baked.uv_per_corner)
    projected = project_texture(detected.image.rgb, surface, refined.faces, refined.camera,
                                detected.detection.person_box_px, detected.targets.mask)
    return Textured(projected.texture, projected.uv_per_corner)


# ---- metrics -------------------------------------------------------------------------------------------------


def measure_alignment(fitter: BodyFitter, detected: Detected, refined: Refined,
                      clothing: ClothingResult | None) -> AlignmentReport:
    """2D alignment of the final surfaces: silhouette IoU against the detector's mask, keypoint error."""
    from munet.fitting.landmarks import FACE, LM
    from munet.geometry.metrics import keypoint_error, silhouette_iou
    from munet.geometry.raster import rasterize_silhouette

    targets, detection, camera, faces = detected.targets, detected.detection, refined.camera, refined.faces
    width, height = targets.image_size

    def iou(vertices: np.ndarray) -> float:
        uv, _ = camera.project(vertices.astype(np.float64))
        return round(silhouette_iou(rasterize_silhouette(uv, faces, height, width, closed=True), targets.mask), 4)

    landmarks = fitter.regress_landmarks(refined.posed_vertices_m.astype(np.float64))
    model_px, _ = camera.project(landmarks.astype(np.float64))
    scored = detection.seen.copy()
    if targets.facing_away:  # MediaPipe's face points land on the back of the head: not scored
        scored[[i for i in FACE if i not in (LM["left_ear"], LM["right_ear"])]] = False
    rest_height = float(refined.rest_vertices_m[:, 2].max())
    pelvis = refined.posed.joints_m[0, 0].numpy()
    pelvis_depth = float(camera.project(pelvis[None].astype(np.float64))[1][0])
    person_px = rest_height * float(np.mean(camera.focal_px)) / max(pelvis_depth, 0.1)
    error_px = keypoint_error(model_px, detection.keypoints_px, scored.astype(np.float64))
    error_all = keypoint_error(model_px, detection.keypoints_px, detection.seen.astype(np.float64))
    return AlignmentReport(
        body_iou=iou(refined.posed_vertices_m),
        clothed_iou=None if clothing is None else iou(clothing.posed_vertices_m),
        keypoint_error_px=round(error_px, 2),
        keypoint_error_fraction=round(error_px / person_px, 5),
        keypoint_error_all_seen_px=round(error_all, 2),
        keypoints_scored=int(scored.sum()),
        person_height_px=round(person_px, 1),
        model_keypoints_px=np.round(model_px, 1),
    )


def measure_depth(detected: Detected, initialised: Initialised, fitted: Fitted, refined: Refined) -> DepthReport:
    """What each depth cue says about the legs and which one the result follows (``munet.fitting.depth``)."""
    from munet.fitting.depth import depth_report

    posed = refined.posed
    return depth_report(detected.detection, detected.targets, posed.joints_m[0].numpy(),
                        posed.global_rotations[0, 0].numpy(), refined.camera, list(fitted.hypotheses), fitted.chosen,
                        fitted.without_ground, network=initialised.network is not None)
