"""A posed body as a ``Reconstruction`` (no photo): for the body demo and export tests."""

from __future__ import annotations

import numpy as np
import torch

from munet.reconstruction import Camera, Reconstruction, SkinnedSurface
from munet.report import PlainReport


def posed_body_reconstruction(skeleton: str = "smpl24", seed: int = 3) -> Reconstruction:
    """Anny (average phenotype) in a random plausible smpl24 pose, facing the camera (root yaw 0).

    For the ``full`` skeleton the same body is expressed on Anny's own bones by fitting them to the
    smpl24-posed vertices.
    """
    from munet.body import load_body_model
    from munet.body.limits import sample_plausible_poses
    from munet.body.vertex_fit import fit_to_vertices

    body = load_body_model("anny", skeleton="smpl24")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        shape = body.default_shape
        rest_vertices, rest_joints = body.rest(shape)
        pose = sample_plausible_poses(1, rest_joints[0], generator, root_yaw=False)
        pose[:, 0] = 0.0
        out = body.pose(rest_vertices, rest_joints, pose)
    if skeleton == "full":
        body = load_body_model("anny", skeleton="full")
        fit = fit_to_vertices(body, out.vertices_m, shape_init=shape)
        with torch.no_grad():
            rest_vertices, rest_joints = body.rest(fit.shape)
            out = body.pose(rest_vertices, rest_joints, fit.pose_axis_angle, fit.translation_m)
        pose, translation = fit.pose_axis_angle, fit.translation_m
    else:
        translation = torch.zeros(1, 3)
    surface = SkinnedSurface(
        rest_vertices_m=rest_vertices[0].numpy().astype(np.float32),
        posed_vertices_m=out.vertices_m[0].numpy().astype(np.float32),
        faces=body.faces.numpy().astype(np.int32),
        skin=body.skin_weights(),
    )
    # a 50 mm-equivalent camera 4 m in front of the body, looking at it (OpenCV frame: z forward)
    R_world_to_cam = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    camera = Camera(focal_px=(1400.0, 1400.0), principal_point_px=(500.0, 750.0), image_size=(1000, 1500),
                    R_world_to_cam=R_world_to_cam, t_world_to_cam_m=np.array([0.0, 0.9, 4.0]))
    return Reconstruction(
        body=surface, clothed=None, skeleton=body.skeleton(rest_joints[0]),
        pose_axis_angle=pose[0].numpy().astype(np.float32),
        root_translation_m=translation[0].numpy().astype(np.float32),
        shape=shape[0].numpy().astype(np.float32), body_model="anny", camera=camera, texture=None,
        report=PlainReport({"source": "body-demo", "seed": seed}),
    )
