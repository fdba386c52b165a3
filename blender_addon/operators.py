"""Operators: gather settings into a plain request, call the logic, report ``AddonError``."""

from __future__ import annotations

import pathlib

import bpy
from bpy.props import BoolProperty, EnumProperty, StringProperty

from . import animate, client, export, jobs, local_backend, protocol, scene
from .errors import AddonError
from .props import prefs


def endpoint_of(context) -> str:
    settings = context.scene.munet
    p = prefs(context)
    return (settings.endpoint or (p.default_endpoint if p else "") or client.DEFAULT_ENDPOINT).strip()


def photo_bytes(settings) -> tuple[bytes, str, str]:
    """(encoded photo, file path or "", Blender image name or "") from the panel's settings."""
    image = settings.image
    if image is not None:
        if image.packed_file is not None:
            return bytes(image.packed_file.data), "", image.name
        path = pathlib.Path(bpy.path.abspath(image.filepath)) if image.filepath else None
        if path is None or not path.is_file():
            raise AddonError(f"the image {image.name!r} has no file on disk and is not packed: save it first",
                             code="no_photo")
        return path.read_bytes(), str(path), image.name
    if not settings.photo_path:
        raise AddonError("choose a photo (a file, or an image loaded in Blender)", code="no_photo")
    path = pathlib.Path(bpy.path.abspath(settings.photo_path))
    if not path.is_file():
        raise AddonError(f"the photo {path} does not exist", code="no_photo")
    return path.read_bytes(), str(path), ""


def gather(context) -> jobs.Request:
    settings = context.scene.munet
    p = prefs(context)
    photo, path, image_name = photo_bytes(settings)
    options = protocol.Options(
        body_model=settings.body_model, skeleton=settings.skeleton, clothed=settings.clothed,
        refine_iterations=settings.refine_iterations if settings.refine else 0, texture=settings.texture,
    )
    return jobs.Request(
        endpoint=endpoint_of(context), photo=photo, name=jobs.request_name(path, image_name),
        photo_path=path, image_name=image_name, options=options,
        build=scene.BuildOptions(clothed=settings.clothed, texture=settings.texture, camera=settings.camera,
                                 rest_pose=settings.rest_pose),
        timeout_s=p.timeout_s if p else 300.0, answer_timeout_s=p.answer_timeout_s if p else 10.0,
    )


class MUNET_OT_reconstruct(bpy.types.Operator):
    """Send the photo to the MuNet backend and build a rigged, clothed character from it"""

    bl_idname = "munet.reconstruct"
    bl_label = "Reconstruct from image"
    bl_options = {"REGISTER"}

    @classmethod
    def poll(cls, context):
        return jobs.Jobs.current is None

    def execute(self, context):
        try:
            jobs.start(gather(context), context)
        except AddonError as e:
            context.window_manager.munet.message = str(e)
            self.report({"ERROR"}, f"MuNet: {e}")
            return {"CANCELLED"}
        return {"FINISHED"}


class MUNET_OT_cancel(bpy.types.Operator):
    """Cancel the running reconstruction"""

    bl_idname = "munet.cancel"
    bl_label = "Cancel"

    def execute(self, context):
        jobs.cancel(context)
        return {"FINISHED"}


class MUNET_OT_test_connection(bpy.types.Operator):
    """Ask the backend what it runs"""

    bl_idname = "munet.test_connection"
    bl_label = "Test connection"

    def execute(self, context):
        st = context.window_manager.munet
        try:
            p = prefs(context)
            info = client.request_info(endpoint_of(context), min(p.answer_timeout_s if p else 3.0, 5.0))
        except AddonError as e:
            st.info = f"Not connected: {e}"
            self.report({"ERROR"}, f"MuNet: {e}")
            return {"CANCELLED"}
        st.info = client.describe_info(info)
        self.report({"INFO"}, f"MuNet backend: {st.info}")
        return {"FINISHED"}


class MUNET_OT_start_local_backend(bpy.types.Operator):
    """Start `munet serve` from the Python environment set in the preferences"""

    bl_idname = "munet.start_local_backend"
    bl_label = "Start local backend"

    def execute(self, context):
        p = prefs(context)
        log_dir = bpy.utils.user_resource("DATAFILES", path="munet", create=True) or bpy.app.tempdir
        try:
            local_backend.LOCAL.start(p.python_env if p else "", p.default_endpoint if p else client.DEFAULT_ENDPOINT,
                                      log_dir)
        except AddonError as e:
            self.report({"ERROR"}, f"MuNet: {e}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"MuNet: local backend {local_backend.LOCAL.status()}; the preferences say when it is "
                              f"ready (log: {local_backend.LOCAL.log_path})")
        if not bpy.app.timers.is_registered(_watch_local_backend):
            bpy.app.timers.register(_watch_local_backend, first_interval=0.5)
        return {"FINISHED"}


def _watch_local_backend():
    """Timer: redraw the preferences while the local backend starts (until it is ready or exited)."""
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "PREFERENCES":
                area.tag_redraw()
    return 0.5 if local_backend.LOCAL.running and not local_backend.LOCAL.ready else None


class MUNET_OT_stop_local_backend(bpy.types.Operator):
    """Stop the local backend started from Blender"""

    bl_idname = "munet.stop_local_backend"
    bl_label = "Stop local backend"

    def execute(self, context):
        local_backend.LOCAL.stop()
        self.report({"INFO"}, f"MuNet: local backend {local_backend.LOCAL.status()}")
        return {"FINISHED"}


class MUNET_OT_apply_motion(bpy.types.Operator):
    """Put a motion (SMPL/AMASS .npz or BVH) on the selected character as a new Action"""

    bl_idname = "munet.apply_motion"
    bl_label = "Apply motion"
    bl_options = {"REGISTER", "UNDO"}

    filepath: StringProperty(name="Motion", subtype="FILE_PATH",
                             description="An SMPL/AMASS .npz (poses, trans) or a BVH file (CMU, Mixamo, ... names)")
    filter_glob: StringProperty(default="*.npz;*.bvh", options={"HIDDEN"})
    set_frame_range: BoolProperty(name="Set frame range", default=True,
                                  description="End the scene's frame range at the motion's last frame")

    @classmethod
    def poll(cls, context):
        try:
            animate.character_armature(context)
        except AddonError as e:
            cls.poll_message_set(str(e))
            return False
        return True

    def invoke(self, context, event):
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        try:
            done = animate.apply_motion(context, self.filepath, set_frame_range=self.set_frame_range)
        except AddonError as e:
            self.report({"ERROR"}, f"MuNet: {e}")
            return {"CANCELLED"}
        message = (f"applied {done.action.name}: frames {done.frame_start}-{done.frame_end} "
                   f"in {done.seconds * 1000:.0f} ms")
        context.window_manager.munet.message = message
        self.report({"INFO"}, f"MuNet: {message}")
        return {"FINISHED"}


class MUNET_OT_export_character(bpy.types.Operator):
    """Export the selected character (armature, Body, Clothed, texture, action) for another tool"""

    bl_idname = "munet.export_character"
    bl_label = "Export character"
    bl_options = {"REGISTER"}

    filepath: StringProperty(name="File", subtype="FILE_PATH")
    format: EnumProperty(name="Format", default="FBX", items=[
        ("FBX", "FBX", "Texture embedded, no leaf bones, the action baked (Unity, Unreal, Maya, ...)"),
        ("GLB", "GLB", "glTF binary, at most 4 influences per vertex (web viewers, three.js, Godot, ...)")])
    preset: EnumProperty(name="Preset", default="UNITY", items=[
        (key, value["label"], f"Settings for {value['label']} ({value['format']} by default)")
        for key, value in export.PRESETS.items()])

    @classmethod
    def poll(cls, context):
        return MUNET_OT_apply_motion.poll(context)

    def invoke(self, context, event):
        arm = animate.character_armature(context)
        stem = arm.users_collection[0].name if arm.users_collection else arm.name
        self.filepath = bpy.path.ensure_ext(bpy.path.clean_name(stem), "." + self.format.lower())
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        try:
            done = export.export_character(context, animate.character_armature(context), self.filepath,
                                           self.format, self.preset)
        except AddonError as e:
            self.report({"ERROR"}, f"MuNet: {e}")
            return {"CANCELLED"}
        message = f"exported {done.path.name} in {done.seconds * 1000:.0f} ms"
        context.window_manager.munet.message = message
        self.report({"INFO"}, f"MuNet: {message}")
        return {"FINISHED"}


class MUNET_OT_report(bpy.types.Operator):
    """Show a message in the report area (used by the poll function, which has no operator of its own)"""

    bl_idname = "munet.report"
    bl_label = "MuNet report"
    bl_options = {"INTERNAL"}

    level: EnumProperty(items=[(k, k, "") for k in ("INFO", "WARNING", "ERROR")])
    message: StringProperty()

    def execute(self, context):
        self.report({self.level}, self.message)
        return {"FINISHED"}


CLASSES = (MUNET_OT_reconstruct, MUNET_OT_cancel, MUNET_OT_test_connection, MUNET_OT_start_local_backend,
           MUNET_OT_stop_local_backend, MUNET_OT_apply_motion, MUNET_OT_export_character, MUNET_OT_report)


register, unregister = bpy.utils.register_classes_factory(CLASSES)
