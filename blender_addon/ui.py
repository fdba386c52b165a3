"""The sidebar panel (View3D > Sidebar > MuNet): layout only."""

from __future__ import annotations

import bpy

from . import export, jobs


class MUNET_PT_reconstruct(bpy.types.Panel):
    bl_label = "MuNet Reconstruct"
    bl_idname = "MUNET_PT_reconstruct"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "MuNet"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.munet
        st = context.window_manager.munet

        col = layout.column(align=True)
        col.prop(settings, "photo_path")
        col.prop_search(settings, "image", bpy.data, "images", text="or Image")

        box = layout.box()
        box.prop(settings, "endpoint", text="Endpoint", placeholder="default from preferences")
        box.operator("munet.test_connection", icon="URL")
        if st.info:
            box.label(text=st.info)

        col = layout.column(heading="Options")
        col.prop(settings, "body_model")
        col.prop(settings, "skeleton")
        col.prop(settings, "clothed")
        row = col.row(align=True)
        row.prop(settings, "refine")
        sub = row.row()
        sub.enabled = settings.refine
        sub.prop(settings, "refine_iterations")
        col.prop(settings, "texture")
        col.prop(settings, "camera")
        col.prop(settings, "rest_pose")

        if jobs.Jobs.current is None:
            layout.operator("munet.reconstruct", icon="ARMATURE_DATA")
        else:
            text = f"{st.stage} ({st.progress * 100:.0f}%)"
            if hasattr(layout, "progress"):
                layout.progress(factor=st.progress, type="BAR", text=text)
            else:
                layout.label(text=text)
            layout.operator("munet.cancel", icon="CANCEL")
        if st.message:
            for line in _wrap(st.message, 48):
                layout.label(text=line)


class MUNET_PT_animate(bpy.types.Panel):
    bl_label = "Animate and export"
    bl_idname = "MUNET_PT_animate"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "MuNet"
    bl_parent_id = "MUNET_PT_reconstruct"

    def draw(self, context):
        layout = self.layout
        layout.label(text="On the selected character:")
        layout.operator("munet.apply_motion", text="Apply motion (.npz, .bvh)", icon="ARMATURE_DATA")
        col = layout.column(align=True)
        for key, preset in export.PRESETS.items():
            op = col.operator("munet.export_character", text=f"Export for {preset['label'].split(' (')[0]} "
                                                             f"({preset['format']})", icon="EXPORT")
            op.preset, op.format = key, preset["format"]


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + ([line] if line else [])


CLASSES = (MUNET_PT_reconstruct, MUNET_PT_animate)


register, unregister = bpy.utils.register_classes_factory(CLASSES)
