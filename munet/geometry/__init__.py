"""Geometry: a vectorised rasteriser (silhouettes, z-buffer), mesh utilities and 2D metrics.

Everything here is plain numpy (plus torch for differentiable normals) and imports nothing heavy, so
the synthetic data engine and the pipeline can both use it.
"""

from munet.geometry.mesh import (
    adjacency,
    mask_outline,
    mean_neighbour_operator,
    outline_vertices,
    smooth_field,
    vertex_normals,
    vertex_normals_torch,
)
from munet.geometry.metrics import keypoint_error, silhouette_iou
from munet.geometry.raster import rasterize_silhouette, rasterize_zbuffer

__all__ = [
    "adjacency",
    "keypoint_error",
    "mask_outline",
    "mean_neighbour_operator",
    "outline_vertices",
    "rasterize_silhouette",
    "rasterize_zbuffer",
    "silhouette_iou",
    "smooth_field",
    "vertex_normals",
    "vertex_normals_torch",
]
