"""Settings (saved with the scene), run-time state (window manager) and the add-on preferences."""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty

from . import client, local_backend


def prefs(context=None):
    """The add-on's preferences (defaults when the add-on is not registered under its package)."""
    addon = (context or bpy.context).preferences.addons.get(__package__)
    return addon.preferences if addon else None


class MunetSettings(bpy.types.PropertyGroup):
    photo_path: StringProperty(name="Photo", subtype="FILE_PATH", description="The photo of one person")
    image: PointerProperty(name="Image", type=bpy.types.Image,
                           description="An image already loaded in Blender (used instead of the file path)")
    endpoint: StringProperty(name="Endpoint", default="",
                             description="The backend's ZeroMQ endpoint (empty: the preferences' default)")
    body_model: EnumProperty(name="Body model", items=[("anny", "Anny", "The free default body model"),
                                                       ("smpl", "SMPL", "Needs your SMPL files on the backend")])
    skeleton: EnumProperty(name="Skeleton", items=[("smpl24", "SMPL 24", "SMPL's 24 joints"),
                                                   ("full", "Full", "Anny's own bones, fingers included")])
    clothed: BoolProperty(name="Clothed surface", default=True)
    refine: BoolProperty(name="Refinement", default=True, description="Test-time refinement against the photo")
    refine_iterations: IntProperty(name="Iterations", default=40, min=1, max=1000)
    texture: BoolProperty(name="Texture", default=True, description="Project the photo onto the surface")
    camera: BoolProperty(name="Match photo camera", default=True,
                         description="Add a camera that matches the photo, with the photo (packed into the "
                                     "file) as its background. Also sets the scene's render resolution to the "
                                     "photo's size; when off, render settings are left as they are")
    rest_pose: EnumProperty(
        name="Rest pose", default="MODEL",
        description="The pose the meshes are bound in (what Rest Position shows, and the bind pose exports carry)",
        items=[("MODEL", "A-pose", "The body model's own rest (arms down at about 45 degrees)"),
               ("TPOSE", "T-pose", "Arms straight out sideways, as many game rigs and motion libraries expect"),
               ("PHOTO", "Photo's pose", "The pose in the photo, standing upright")])


class MunetState(bpy.types.PropertyGroup):
    running: BoolProperty(default=False)
    stage: StringProperty(default="")
    progress: FloatProperty(default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    message: StringProperty(default="")
    info: StringProperty(default="")
    last_build_s: FloatProperty(default=0.0)


class MunetPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    default_endpoint: StringProperty(name="Default endpoint", default=client.DEFAULT_ENDPOINT)
    timeout_s: FloatProperty(name="Timeout (s)", default=300.0, min=1.0, max=3600.0,
                             description="How long a reconstruction may take")
    answer_timeout_s: FloatProperty(name="Silence timeout (s)", default=10.0, min=1.0, max=600.0,
                                    description="Silence after which the backend counts as unreachable")
    python_env: StringProperty(name="Backend Python environment", subtype="DIR_PATH",
                               description="Folder of a Python environment with MuNet installed, "
                                           "for 'Start local backend'")

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "default_endpoint")
        row = layout.row()
        row.prop(self, "timeout_s")
        row.prop(self, "answer_timeout_s")
        layout.prop(self, "python_env")
        row = layout.row()
        row.operator("munet.start_local_backend", icon="PLAY")
        row.operator("munet.stop_local_backend", icon="PAUSE")
        status, *log_tail = local_backend.LOCAL.status_lines()  # the log's last lines once it failed
        layout.label(text=f"Local backend: {status}")
        for line in log_tail:
            layout.label(text=line)


CLASSES = (MunetSettings, MunetState, MunetPreferences)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.munet = PointerProperty(type=MunetSettings)
    bpy.types.WindowManager.munet = PointerProperty(type=MunetState)


def unregister():
    del bpy.types.WindowManager.munet
    del bpy.types.Scene.munet
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
