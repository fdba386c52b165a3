"""What a reconstruction returns: plain numpy dataclasses, no torch, no bpy.

Conventions (DESIGN.md §5), stated once here and referred to everywhere else:

* **World frame = Blender's**: metres, right-handed, Z up, the person faces -Y, feet on z=0 in the
  rest pose. The person's left is +X in the rest pose.
* **Joint frames**: every joint's local frame is axis-aligned with the world in the rest pose (the
  SMPL convention). ``pose_axis_angle[j]`` is the rotation of joint ``j`` relative to its parent,
  expressed in those world-aligned axes; joint 0 (the root) carries the global orientation.
  Skinning: ``G_j = G_parent(j) @ [R_j | t_j]`` and a vertex moves by ``sum_k w_k G_k (v - J_k)``.
  A Blender pose bone whose rest orientation (armature space) is ``B`` gets the local rotation
  ``B^T R_j B``.
* **Camera frame = OpenCV's**: x right, y down, z forward (into the scene). A world point ``X``
  maps to ``x_cam = R_world_to_cam @ X + t_world_to_cam_m`` and to pixels
  ``u = fx * x/z + cx, v = fy * y/z + cy``, with (0, 0) the top-left corner of the top-left pixel.
* **Skin weights** are sparse: ``K`` influences per vertex, padded with weight 0 and joint 0;
  each row sums to 1.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from munet.report import PlainReport, ReconstructionReport


@dataclasses.dataclass(frozen=True)
class Skeleton:
    """A joint hierarchy in its rest pose.

    name: ``"smpl24"`` or ``"full"``.
    joint_names: (J,) names, parents before children.
    parents: (J,) int32, -1 for the root.
    rest_joints_m: (J, 3) float32, metres, world frame, rest pose of this person's shape.
    """

    name: str
    joint_names: tuple[str, ...]
    parents: np.ndarray
    rest_joints_m: np.ndarray

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)


@dataclasses.dataclass(frozen=True)
class SkinWeights:
    """Sparse linear-blend-skinning weights.

    joint_indices: (V, K) int32 into the skeleton's joints.
    weights: (V, K) float32, rows sum to 1, zero-padded.
    """

    joint_indices: np.ndarray
    weights: np.ndarray

    def dense(self, num_joints: int) -> np.ndarray:
        """(V, J) float32 dense weights."""
        num_vertices = self.joint_indices.shape[0]
        dense = np.zeros((num_vertices, num_joints), np.float32)
        rows = np.repeat(np.arange(num_vertices), self.joint_indices.shape[1])
        np.add.at(dense, (rows, self.joint_indices.ravel()), self.weights.ravel())
        return dense


@dataclasses.dataclass(frozen=True)
class SkinnedSurface:
    """A triangle mesh bound to the skeleton.

    rest_vertices_m: (V, 3) float32, world frame, the rest pose (what the add-on binds).
    posed_vertices_m: (V, 3) float32, world frame, the reconstructed pose (rest + pose via LBS).
    faces: (F, 3) int32, counter-clockwise seen from outside.
    skin: weights over the skeleton's joints.
    uv_per_corner: (F, 3, 2) float32 texture coordinates per face corner, in [0, 1], v up
        (Blender/glTF-after-flip convention: (0, 0) is the bottom-left of the texture), or None.
    """

    rest_vertices_m: np.ndarray
    posed_vertices_m: np.ndarray
    faces: np.ndarray
    skin: SkinWeights
    uv_per_corner: np.ndarray | None = None


@dataclasses.dataclass(frozen=True)
class Camera:
    """A pinhole camera that maps the world frame onto the photo (OpenCV camera frame).

    focal_px: (fx, fy) in pixels of the full photo.
    principal_point_px: (cx, cy).
    image_size: (width, height) of the photo in pixels, after EXIF orientation.
    R_world_to_cam: (3, 3) float64 rotation.
    t_world_to_cam_m: (3,) float64 translation, metres.
    """

    focal_px: tuple[float, float]
    principal_point_px: tuple[float, float]
    image_size: tuple[int, int]
    R_world_to_cam: np.ndarray
    t_world_to_cam_m: np.ndarray

    def K_pixels(self) -> np.ndarray:
        """(3, 3) float64 intrinsics matrix."""
        (fx, fy), (cx, cy) = self.focal_px, self.principal_point_px
        return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])

    def project(self, points_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project (N, 3) world points: returns (N, 2) pixels and (N,) camera depth in metres."""
        cam = points_m @ self.R_world_to_cam.T + self.t_world_to_cam_m
        depth = cam[:, 2]
        uv = cam[:, :2] / np.maximum(depth[:, None], 1e-6)
        uv = uv * np.asarray(self.focal_px) + np.asarray(self.principal_point_px)
        return uv, depth


@dataclasses.dataclass(frozen=True)
class Texture:
    """An image for the clothed surface's material (encoded PNG or JPEG bytes)."""

    image_bytes: bytes
    mime_type: str
    width: int
    height: int


@dataclasses.dataclass(frozen=True)
class Reconstruction:
    """Everything needed to build the animatable character.

    body: the unclothed body mesh.
    clothed: the clothed surface (the body's topology or a subdivision of it), same skeleton, or None
        when the clothed stage was switched off.
    skeleton: the rig both meshes are bound to.
    pose_axis_angle: (J, 3) float32, per-joint axis-angle (radians), see the module docstring.
    root_translation_m: (3,) float32, added after posing (world frame).
    shape: (S,) float32 body-model shape parameters (Anny: phenotypes in [0, 1]).
    body_model: ``"anny"`` or ``"smpl"``.
    camera: the camera under which the posed meshes project onto the photo.
    texture: the projected photo for the clothed (or body) surface, or None.
    report: facts about the run: timings, alignment, what was not seen, which cues won
        (``munet.report.ReconstructionReport``; a ``PlainReport`` when received as JSON); ``to_json()``
        gives the JSON the CLI writes and the server sends.
    """

    body: SkinnedSurface
    clothed: SkinnedSurface | None
    skeleton: Skeleton
    pose_axis_angle: np.ndarray
    root_translation_m: np.ndarray
    shape: np.ndarray
    body_model: str
    camera: Camera
    texture: Texture | None
    report: ReconstructionReport | PlainReport


@dataclasses.dataclass(frozen=True)
class ReconstructOptions:
    """What a caller may choose for one reconstruction (validated by ``validate``).

    body_model: ``"anny"`` (default, free) or ``"smpl"`` (needs the user's licensed files in
        ``smpl_dir`` or ``$MUNET_SMPL_DIR``).
    skeleton: ``"smpl24"`` (SMPL's 24 joints) or ``"full"`` (Anny's own bones, fingers included).
    clothed: also build the clothed surface.
    method: ``"network"`` (default: the MuNet checkpoint, ``checkpoint`` or the shipped
        ``checkpoints/munet.safetensors``, + the test-time refinement anchored to its 3D) or ``"fitting"``
        (the optimisation-only pipeline). Where no checkpoint ships, "network" falls back to fitting with a
        note in the report.
    refine_iterations: test-time refinement iterations (0 switches refinement off).
    texture: texture the surface from the photo (a baked UV atlas for Anny, the projected photo for SMPL).
    texture_size: the atlas side in pixels, 1024 to 4096 (default 2048).
    device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
    """

    body_model: str = "anny"
    smpl_dir: str | None = None
    skeleton: str = "smpl24"
    clothed: bool = True
    method: str = "network"
    refine_iterations: int = 40
    texture: bool = True
    texture_size: int = 2048
    device: str = "auto"
    checkpoint: str | None = None

    CHOICES = {
        "body_model": ("anny", "smpl"),
        "skeleton": ("smpl24", "full"),
        "method": ("network", "fitting"),
        "device": ("auto", "cpu", "cuda"),
    }
    MAX_REFINE_ITERATIONS = 1000
    TEXTURE_SIZES = (1024, 4096)

    def validate(self) -> "ReconstructOptions":
        """Raise ``BadOptionsError`` naming the bad field and its allowed values."""
        from munet.errors import BadOptionsError

        for field, allowed in self.CHOICES.items():
            value = getattr(self, field)
            if value not in allowed:
                raise BadOptionsError(f"option {field}={value!r} is not one of {', '.join(allowed)}")
        for field in ("clothed", "texture"):
            if not isinstance(getattr(self, field), bool):
                raise BadOptionsError(f"option {field} must be true or false")
        iterations = self.refine_iterations
        if isinstance(iterations, bool) or not isinstance(iterations, int) or not 0 <= iterations <= self.MAX_REFINE_ITERATIONS:
            raise BadOptionsError(f"option refine_iterations must be an integer in [0, {self.MAX_REFINE_ITERATIONS}]")
        size = self.texture_size
        low, high = self.TEXTURE_SIZES
        if isinstance(size, bool) or not isinstance(size, int) or not low <= size <= high:
            raise BadOptionsError(f"option texture_size must be an integer in [{low}, {high}] (pixels)")
        return self
