"""Geometry: one home for the maths the pipeline, the fitting and the training share.

* ``mesh``: vertex and face normals (numpy and batched torch), neighbourhoods, smoothing, outlines.
* ``projection``: the pinhole camera (``project_pinhole``) and the network's weak perspective.
* ``rotations``: axis-angle, rotation matrices and XYZ Euler angles (torch).
* ``raster``: the one triangle rasteriser (batched torch ``rasterize``; numpy ``rasterize_silhouette``
  and ``rasterize_zbuffer`` for one mesh).
* ``metrics``: silhouette IoU and keypoint error, in the report's units.

Nothing here imports the body models, the network, the backend or the training code.
"""

from munet.geometry.mesh import (
    adjacency,
    face_normals,
    face_normals_torch,
    mask_outline,
    mean_neighbour_operator,
    outline_vertices,
    smooth_field,
    vertex_normals,
    vertex_normals_torch,
)
from munet.geometry.metrics import keypoint_error, silhouette_iou
from munet.geometry.projection import project_pinhole
from munet.geometry.raster import Raster, rasterize, rasterize_silhouette, rasterize_zbuffer

__all__ = [
    "Raster",
    "adjacency",
    "face_normals",
    "face_normals_torch",
    "keypoint_error",
    "mask_outline",
    "mean_neighbour_operator",
    "outline_vertices",
    "project_pinhole",
    "rasterize",
    "rasterize_silhouette",
    "rasterize_zbuffer",
    "silhouette_iou",
    "smooth_field",
    "vertex_normals",
    "vertex_normals_torch",
]
