"""Textures for the reconstructed surfaces.

* ``bake_texture`` (``munet.texture.bake``): a UV atlas baked from the photo, for body models that ship a
  UV layout (Anny): the seen front occlusion-aware, the unseen rest synthesised per region.
* ``project_texture`` (``munet.texture.projection``): the photo itself with projected UVs, the fallback
  for body models without UVs (SMPL here).
* ``uv_atlas`` / ``texel_map`` (``munet.texture.atlas``): a body model's layout, prepared once per
  topology.
"""

from munet.texture.atlas import UVAtlas, texel_map, uv_atlas
from munet.texture.bake import DEFAULT_SIZE, SIZE_RANGE, BakedTexture, bake_texture
from munet.texture.projection import ProjectedTexture, project_texture, visible_faces

__all__ = ["DEFAULT_SIZE", "SIZE_RANGE", "BakedTexture", "ProjectedTexture", "UVAtlas", "bake_texture",
           "project_texture", "texel_map", "uv_atlas", "visible_faces"]
