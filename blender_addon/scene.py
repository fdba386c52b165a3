"""Build the character in the scene from a decoded result (all bpy; no sockets).

``build_character`` makes, in a new collection: an Armature (bones at the backend's rest joints,
the reconstructed pose applied), the ``Body`` and ``Clothed`` meshes (rest vertices, parented, an
Armature modifier, one vertex group per joint from the sparse weights), a material with the
projected photo, and optionally a camera that matches the photo with the photo as its background.

Frames: the result is already in Blender's frame (metres, Z up, the person faces -Y); nothing is
converted except the camera (OpenCV x right, y down, z forward -> Blender camera looking down -Z
with +Y up). Pose: joint ``j``'s axis-angle ``R_j`` is relative to its parent in world-aligned
frames; a pose bone with rest orientation ``B`` (armature space) gets the local rotation
``B^T R_j B``. Placement: the root translation ``t`` lives on the armature object (its horizontal part
and the floor under the posed feet), so the Rest pose stands where the posed character is; only the
vertical rest of ``t`` stays on the root bone (location ``B_0^T (0, 0, dz)``).

Rest pose (``BuildOptions.rest_pose``): the body model's own rest, a T-pose, or the photo's pose; the
surfaces are rebound by posing their rest vertices with linear blend skinning (``kinematics.rebind``),
and the armature keeps the rotations that take its rest to the T-pose (``TPOSE_PROPERTY``) for motions.
"""

from __future__ import annotations

import dataclasses
import time

import bpy
import numpy as np
from mathutils import Matrix, Vector

from . import kinematics as kin
from .errors import AddonError

#: Custom property on the armature object: (J * 9) floats, the global rotations from its rest to the T-pose.
TPOSE_PROPERTY = "munet_to_tpose"
#: Custom property on the armature object: (J * 3) floats, the body model's standing rest joints (feet heights).
STAND_PROPERTY = "munet_stand_joints"
REST_POSE_PROPERTY = "munet_rest_pose"


@dataclasses.dataclass(frozen=True)
class BuildOptions:
    clothed: bool = True
    texture: bool = True
    camera: bool = True
    rest_pose: str = "MODEL"  # one of kinematics.REST_POSES


@dataclasses.dataclass
class Built:
    """What ``build_character`` made, and how long it took (seconds)."""

    collection: bpy.types.Collection
    armature: bpy.types.Object
    meshes: list
    camera: bpy.types.Object | None
    seconds: float


def bone_tails(rest_joints: np.ndarray, parents: np.ndarray) -> np.ndarray:
    """(J, 3) tail positions: towards the (most central) child; leaves continue their parent's
    direction at half its length (at least 4 cm)."""
    J = len(parents)
    tails = np.zeros_like(rest_joints, dtype=np.float64)
    children: list[list[int]] = [[] for _ in range(J)]
    for j in range(1, J):
        children[parents[j]].append(j)
    for j in range(J):
        head = rest_joints[j].astype(np.float64)
        if children[j]:
            c = min(children[j], key=lambda i: abs(rest_joints[i, 0] - head[0]))
            tail = rest_joints[c].astype(np.float64)
        elif parents[j] >= 0:
            direction = head - rest_joints[parents[j]]
            length = np.linalg.norm(direction)
            tail = head + (direction / max(length, 1e-9)) * max(0.5 * length, 0.04)
        else:
            tail = head + np.array([0.0, 0.0, 0.1])
        if np.linalg.norm(tail - head) < 1e-3:
            tail = head + np.array([0.0, 0.0, 0.05])
        tails[j] = tail
    return tails


def dense_weights(joint_indices: np.ndarray, weights: np.ndarray, num_joints: int) -> np.ndarray:
    """Sparse (V, K) -> dense (V, J) float32."""
    V, K = joint_indices.shape
    dense = np.zeros((V, num_joints), np.float32)
    np.add.at(dense, (np.repeat(np.arange(V), K), joint_indices.ravel()), weights.ravel())
    return dense


def _link(obj: bpy.types.Object, collection: bpy.types.Collection) -> bpy.types.Object:
    collection.objects.link(obj)
    return obj


def build_armature(rest_joints: np.ndarray, names, parents, name: str, collection: bpy.types.Collection,
                   view_layer) -> bpy.types.Object:
    """An armature object with one bone per joint, heads at ``rest_joints`` (J, 3), metres, Blender frame."""
    rest = np.asarray(rest_joints, np.float64)
    parents = np.asarray(parents)
    tails = bone_tails(rest, parents)
    data = bpy.data.armatures.new(f"{name} rig")
    data.display_type = "OCTAHEDRAL"
    arm = _link(bpy.data.objects.new("Armature", data), collection)
    arm.show_in_front = True
    view_layer.objects.active = arm
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        bones = []
        for j, joint in enumerate(names):
            eb = data.edit_bones.new(joint)
            eb.head, eb.tail = Vector(rest[j]), Vector(tails[j])
            direction = (tails[j] - rest[j]) / np.linalg.norm(tails[j] - rest[j])
            # Z axis forward (-Y) for limbs and the spine; up (+Z) for bones along Y (feet).
            eb.align_roll(Vector((0.0, 0.0, 1.0)) if abs(direction[1]) > 0.7 else Vector((0.0, -1.0, 0.0)))
            eb.use_deform = True
            if parents[j] >= 0:
                eb.parent = bones[parents[j]]
            bones.append(eb)
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
    return arm


def apply_pose(arm: bpy.types.Object, names, rotations: np.ndarray, root_offset) -> None:
    """Set every pose bone from (J, 3, 3) world-aligned rotations relative to the parent; the root bone
    moves by ``root_offset`` (3,), metres, armature space."""
    for j, joint in enumerate(names):
        pb = arm.pose.bones[joint]
        B = np.array(pb.bone.matrix_local.to_3x3())
        local = B.T @ rotations[j] @ B
        pb.rotation_mode = "QUATERNION"
        pb.rotation_quaternion = Matrix(local.tolist()).to_quaternion()
        if j == 0:
            pb.location = Vector(B.T @ np.asarray(root_offset, np.float64))


def place(arm: bpy.types.Object, bind: kin.Bind, names, posed_floor_z: float) -> None:
    """Put the character where the photo shows it: the armature object at the root translation's
    horizontal part and the floor under the posed feet, the pose on the bones."""
    floor = float(posed_floor_z) - float(bind.rest_vertices[0][:, 2].min())
    root = bind.root_translation
    arm.location = (float(root[0]), float(root[1]), floor)
    apply_pose(arm, names, bind.pose, (0.0, 0.0, float(root[2]) - floor))
    arm[TPOSE_PROPERTY] = np.asarray(bind.to_tpose, np.float64).ravel().tolist()
    arm[STAND_PROPERTY] = np.asarray(bind.stand_joints, np.float64).ravel().tolist()
    arm[REST_POSE_PROPERTY] = bind.rest_pose


def set_vertex_groups(obj: bpy.types.Object, names, dense: np.ndarray) -> None:
    """Replace ``obj``'s vertex groups by one per name from dense (V, J) weights (through float point
    attributes converted in bulk: ~10 ms for 7k vertices x 24 groups)."""
    mesh = obj.data
    obj.vertex_groups.clear()
    for j, joint in enumerate(names):
        if joint in mesh.attributes:
            mesh.attributes.remove(mesh.attributes[joint])
        mesh.attributes.new(joint, "FLOAT", "POINT").data.foreach_set("value", np.ascontiguousarray(dense[:, j]))
    with bpy.context.temp_override(object=obj, active_object=obj, selected_objects=[obj]):
        for joint in names:
            mesh.attributes.active = mesh.attributes[joint]
            bpy.ops.geometry.attribute_convert(mode="VERTEX_GROUP")
    missing = [j for j in names if j not in obj.vertex_groups]
    if missing:
        raise AddonError(f"could not make vertex groups {missing[:3]} on {obj.name}", code="build")


def build_mesh(surface, rest_vertices, name: str, joint_names, collection, arm, view_layer) -> bpy.types.Object:
    """A mesh object at ``rest_vertices`` (V, 3), skinned to ``arm`` with one vertex group per joint."""
    verts = np.ascontiguousarray(rest_vertices, np.float32)
    faces = np.ascontiguousarray(surface.faces, np.int32)
    V, F = len(verts), len(faces)
    mesh = bpy.data.meshes.new(name)
    mesh.vertices.add(V)
    mesh.vertices.foreach_set("co", verts.ravel())
    mesh.loops.add(3 * F)
    mesh.loops.foreach_set("vertex_index", faces.ravel())
    mesh.polygons.add(F)
    mesh.polygons.foreach_set("loop_start", np.arange(0, 3 * F, 3, dtype=np.int32))
    if surface.uv_per_corner is not None:
        uv = mesh.uv_layers.new(name="UVMap")
        uv.data.foreach_set("uv", np.ascontiguousarray(surface.uv_per_corner, np.float32).ravel())
    mesh.update()
    mesh.shade_smooth()

    dense = dense_weights(np.asarray(surface.skin.joint_indices), np.asarray(surface.skin.weights), len(joint_names))
    obj = _link(bpy.data.objects.new(name, mesh), collection)
    obj.parent = arm
    view_layer.objects.active = obj
    set_vertex_groups(obj, joint_names, dense)
    mod = obj.modifiers.new("Armature", "ARMATURE")
    mod.object = arm
    mod.use_vertex_groups = True
    return obj


def image_from_bytes(data: bytes, name: str, mime_type: str = "image/png") -> bpy.types.Image:
    """A packed Blender image from encoded PNG/JPEG bytes (nothing written to disk)."""
    ext = ".jpg" if mime_type == "image/jpeg" else ".png"
    image = bpy.data.images.new(name, 8, 8)
    image.pack(data=bytes(data), data_len=len(data))
    image.source = "FILE"
    image.filepath_raw = f"//{name}{ext}"
    return image


def build_material(name: str, image: bpy.types.Image | None) -> bpy.types.Material:
    mat = bpy.data.materials.new(name)
    if bpy.app.version < (5, 0, 0):
        mat.use_nodes = True
    nodes = mat.node_tree.nodes
    bsdf = next(n for n in nodes if n.type == "BSDF_PRINCIPLED")
    bsdf.inputs["Roughness"].default_value = 0.8
    if image is None:
        bsdf.inputs["Base Color"].default_value = (0.8, 0.62, 0.52, 1.0)
        return mat
    tex = nodes.new("ShaderNodeTexImage")
    tex.image = image
    tex.location = (-400, 200)
    mat.node_tree.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    return mat


def camera_matrix_world(R_world_to_cam: np.ndarray, t_world_to_cam: np.ndarray) -> np.ndarray:
    """(4, 4) Blender camera-to-world matrix from an OpenCV world-to-camera pose."""
    R = np.asarray(R_world_to_cam, np.float64)
    t = np.asarray(t_world_to_cam, np.float64)
    M = np.eye(4)
    M[:3, :3] = R.T @ np.diag([1.0, -1.0, -1.0])  # OpenCV (x right, y down, z fwd) -> Blender camera
    M[:3, 3] = -R.T @ t
    return M


def build_camera(rec, name: str, collection, scene, photo: bpy.types.Image | None) -> bpy.types.Object:
    cam = rec.camera
    (fx, fy), (cx, cy), (w, h) = cam.focal_px, cam.principal_point_px, cam.image_size
    data = bpy.data.cameras.new(f"{name} camera")
    data.sensor_fit = "HORIZONTAL" if w >= h else "VERTICAL"
    data.sensor_width = data.sensor_height = 36.0
    data.lens = fx * 36.0 / max(w, h)
    data.shift_x = -(cx - w / 2.0) / max(w, h)
    data.shift_y = (cy - h / 2.0) / max(w, h)
    data.clip_start, data.clip_end = 0.05, 200.0
    obj = _link(bpy.data.objects.new("Photo camera", data), collection)
    obj.matrix_world = Matrix(camera_matrix_world(cam.R_world_to_cam, cam.t_world_to_cam_m).tolist())
    if photo is not None:
        data.show_background_images = True
        bg = data.background_images.new()
        bg.image = photo
        bg.alpha = 0.6
    scene.render.resolution_x, scene.render.resolution_y = int(w), int(h)
    scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1.0
    scene.render.resolution_percentage = 100
    if scene.camera is None:
        scene.camera = obj
    return obj


def build_character(rec, name: str, options: BuildOptions, photo: bpy.types.Image | None = None,
                    scene=None, view_layer=None) -> Built:
    """Build everything from ``rec`` (a ``protocol.ResultReconstruction``) in a new collection ``name``.

    photo: the photo as a Blender image (camera background, and the texture when the backend sent none).
    On failure everything made so far is removed and ``AddonError`` is raised.
    """
    start = time.perf_counter()
    scene = scene or bpy.context.scene
    view_layer = view_layer or bpy.context.view_layer
    if bpy.context.object is not None and bpy.context.object.mode != "OBJECT":
        bpy.ops.object.mode_set(mode="OBJECT")
    collection = bpy.data.collections.new(name)
    scene.collection.children.link(collection)
    try:
        sk = rec.skeleton
        surfaces = [("Body", rec.body)]
        if options.clothed and rec.clothed is not None:
            surfaces.append(("Clothed", rec.clothed))
        bind = kin.rebind(sk.rest_joints_m, sk.joint_names, np.asarray(sk.parents), rec.pose_axis_angle,
                          rec.root_translation_m, [(surf.rest_vertices_m, surf.skin.joint_indices, surf.skin.weights)
                                                   for _, surf in surfaces], options.rest_pose)
        arm = build_armature(bind.rest_joints, sk.joint_names, sk.parents, name, collection, view_layer)
        place(arm, bind, sk.joint_names, np.asarray(rec.body.posed_vertices_m)[:, 2].min())
        texture = None
        if options.texture and rec.texture is not None:
            texture = image_from_bytes(rec.texture.image_bytes, f"{name} texture", rec.texture.mime_type)
        material = build_material(f"{name} material", texture)
        meshes = []
        for (mesh_name, surface), rest_vertices in zip(surfaces, bind.rest_vertices):
            obj = build_mesh(surface, rest_vertices, mesh_name, sk.joint_names, collection, arm, view_layer)
            obj.data.materials.append(material)
            meshes.append(obj)
        camera = build_camera(rec, name, collection, scene, photo) if options.camera else None
        for obj in view_layer.objects:
            obj.select_set(False)
        arm.select_set(True)
        view_layer.objects.active = arm
    except Exception:
        remove_collection(collection)
        raise
    return Built(collection, arm, meshes, camera, time.perf_counter() - start)


def remove_collection(collection: bpy.types.Collection) -> None:
    """Remove a collection, its objects and their data (used when a build fails half-way)."""
    for obj in list(collection.objects):
        data = obj.data
        bpy.data.objects.remove(obj, do_unlink=True)
        if data is not None and data.users == 0:
            for kind, store in ((bpy.types.Mesh, bpy.data.meshes), (bpy.types.Armature, bpy.data.armatures),
                                (bpy.types.Camera, bpy.data.cameras)):
                if isinstance(data, kind):
                    store.remove(data)
    bpy.data.collections.remove(collection)
