"""Benchmark of the clothed surface (issue 12): how clean it is in the rest pose, how consistent across poses,
and what was detected (garment, hair).

    python -m benchmarks.clothing [--pairs 6] [--no-photos] [--json OUT.json] [--render DIR]

* **Photos** (``tests/data``: lunge.jpg, astronaut.png, grace_hopper.jpg): per photo the rest-surface
  figures of the Clothed mesh against the Body: bumpiness (95th percentile of |L d|, the uniform Laplacian
  of the offset field d = clothed - body on the rest mesh, mm), offset percentiles per region (face,
  hands, feet, scalp, torso, arms, legs; mm), bumpiness without the lower body (where skirts stand off),
  the vertices inside the Body (offset along the Body's rest normal below -0.5 mm, and by the nearest Body
  vertex's normal; the eye and mouth cavities left out), the clothing stage's time and the garment
  and hair the report names.
* **Pose consistency** (synthetic, ``--pairs N``): one person of the data engine (``training/data``) with
  fixed body and clothes in two poses (standing / walking families, facing the camera within +-20 deg),
  rendered with a colour per garment region on a plain background (``render_person``) and reconstructed
  separately by the real pipeline (MediaPipe included); the Chamfer distance between the two Clothed rest
  surfaces (mean of both directions' nearest-vertex distances, cm), between the two Body rest surfaces
  (the floor the shape estimate sets), and of the clothes alone (the second reconstruction's offsets put
  on the first one's Body).

The synthetic people and the measures are importable: ``tests/test_clothing.py`` uses them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import statistics
import sys
import time

import numpy as np

PHOTOS = ("lunge.jpg", "astronaut.png", "grace_hopper.jpg")
IMAGE_SIZE = (720, 960)
FOCAL_PX = 1400.0
CAMERA_HEIGHT_M = 0.95
BACKGROUND_RGB = (214, 214, 208)
# skin, hair, top, bottom, shoes (the regions of ``_garment_regions``)
COLOURS = np.array([[224, 172, 130], [55, 38, 26], [40, 92, 170], [150, 46, 56], [35, 35, 38]], np.float64)
GARMENTS = {
    "trousers": {"bottom": 1, "leg_len": 2.0, "outer": 0},
    "shorts": {"bottom": 0, "leg_len": 0.6, "outer": 0},
    "skirt": {"bottom": 3, "leg_len": 0.95, "flare": 0.1, "outer": 0},
    "dress": {"bottom": 4, "leg_len": 1.35, "flare": 0.12, "outer": 0},
}
"""Garment overrides of the engine's drawn clothes (``training.data.clothing.ClothingParams`` fields)."""
PAIR_GARMENTS = ("trousers", "dress", "shorts", "skirt", None, None, "trousers", "dress", None, None)
"""The garment of pair k (None: as the engine draws it)."""


# ---- synthetic people ------------------------------------------------------------------------------


@dataclasses.dataclass
class SyntheticPerson:
    """One person of the data engine in a few poses: shape (1, 6); params: the clothes (one sample); clothed
    / body: per pose (V, 3) float32 world vertices (feet on the floor, pelvis over the origin); garment:
    the override name (or "drawn")."""

    shape: np.ndarray
    params: object
    clothed: list
    body: list
    offsets: list
    garment: str
    families: list


class SyntheticPeople:
    """The data engine's body model, clothing atlas and pose sampler, loaded once (~3 s)."""

    def __init__(self):
        import torch

        from munet.body.anny_model import AnnyBody
        from training.data import bodies, clothing

        self.body = AnnyBody(skeleton="smpl24")
        with torch.no_grad():
            rest_v, rest_j = self.body.rest(self.body.default_shape)
        self.atlas = clothing.build_atlas(rest_v[0].numpy(), rest_j[0].numpy(), self.body.dense_weights.numpy())
        self.stature_table = bodies.stature_table(self.body)

    def person(self, seed: int, garment: str | None = None, families=("stand", "walk")) -> SyntheticPerson:
        """An adult with the engine's drawn clothes (``garment`` overrides the bottoms) in one pose per family."""
        import torch

        from training.data import bodies, clothing, poses

        rng = np.random.default_rng([int(seed), 4242])
        shape = bodies.sample_shapes(rng, 1, self.stature_table, bodies.PopulationMix(children=0.0, teenagers=0.0))
        female = shape[:, 0]
        params = clothing.sample_clothing(rng, [families[0]], female)
        for field, value in (GARMENTS.get(garment) or {}).items():
            getattr(params, field)[:] = value
        if garment == "dress":
            params.top[:] = np.maximum(params.top, 2)
        with torch.no_grad():
            rest_v, rest_j = self.body.rest(torch.from_numpy(shape))
            radii = poses.capsule_radii(rest_v, rest_j, self.body.dense_weights)
            clothed, body, offsets = [], [], []
            for family in families:
                aa = self._pose(rng, family, rest_j, radii)
                posed = self.body.pose(rest_v, rest_j, aa)
                verts = posed.vertices_m
                shift = torch.zeros(1, 1, 3)
                shift[..., :2] = -posed.joints_m[:, 0, :2][:, None]
                shift[..., 2] = -verts[..., 2].amin()
                dressed, _ = clothing.dress_bodies(verts, rest_v, posed.joints_m, rest_j, posed.global_rotations,
                                                   self.body.faces, self.atlas, params)
                clothed.append((dressed + shift)[0].numpy())
                body.append((verts + shift)[0].numpy())
                offsets.append((dressed - verts).norm(dim=-1)[0].numpy())
        return SyntheticPerson(shape, params, clothed, body, offsets, garment or "drawn", list(families))

    def _pose(self, rng: np.random.Generator, family: str, rest_j, radii):
        """(1, 24, 3) axis-angle of a pose of ``family`` facing the camera within +-20 deg, no self-intersection."""
        import torch

        from munet.body.lbs import forward_kinematics
        from training.data import poses

        for _ in range(20):
            batch, _ = poses.sample_poses(rng, 1, noise_scale=0.5, yaw_range_deg=20.0, pitch_std_deg=2.0,
                                          family_weights={family: 1.0})
            rotations = poses.local_rotations(torch.from_numpy(batch.euler_deg), torch.from_numpy(batch.hinge_deg),
                                              rest_j)
            _, joints = forward_kinematics(rotations, rest_j, self.body.parents)
            if not bool(poses.capsule_intersections(joints, radii)[0]):
                break
        return poses.to_axis_angle(batch, rest_j).float()

    def render(self, person: SyntheticPerson, k: int) -> np.ndarray:
        """(H, W, 3) uint8 photo of pose k: a colour per garment region, Lambert shading, plain background,
        a frontal camera at ``CAMERA_HEIGHT_M`` framing the whole person."""
        regions = _garment_regions(self.atlas, person.offsets[k])
        colours = COLOURS.copy()
        if person.garment == "dress":
            colours[3] = colours[2]
        return render_person(person.clothed[k], self.body.faces.numpy(), colours[regions])


def _garment_regions(atlas, offsets_m: np.ndarray) -> np.ndarray:
    """(V,) 0 skin, 1 hair, 2 top, 3 bottom, 4 shoes: from where a vertex lies and whether cloth covers it."""
    from training.data import clothing

    region = atlas.region.numpy()
    covered = offsets_m > 0.0008
    legs = np.isin(region, (clothing.LEG_L, clothing.LEG_R))
    out = np.zeros(len(region), np.int64)
    out[covered] = 2
    out[covered & (legs | ((region == clothing.TORSO) & (atlas.torso_s.numpy() < 0.2)))] = 3
    out[covered & legs & (atlas.leg_u.numpy() > 1.9)] = 4
    head = np.isin(region, (clothing.HEAD, clothing.NECK))
    out[covered & head] = 0
    out[covered & head & (atlas.hair_cover.numpy() > 0.3)] = 1
    out[covered & (region == clothing.NECK) & (atlas.hair_cover.numpy() <= 0.3)] = 2
    return out


def synthetic_camera():
    """The frontal camera of the synthetic photos: (K (3, 3), R (3, 3), t (3,)), OpenCV frame."""
    width, height = IMAGE_SIZE
    distance = FOCAL_PX * 2.05 / (0.88 * height)
    K = np.array([[FOCAL_PX, 0, width / 2], [0, FOCAL_PX, height / 2], [0, 0, 1.0]])
    R = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])
    centre = np.array([0.0, -distance, CAMERA_HEIGHT_M])
    return K, R, -R @ centre


def render_person(vertices_m: np.ndarray, faces: np.ndarray, vertex_colours: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8: the mesh (V, 3) world vertices through ``synthetic_camera``, flat Lambert-shaded faces
    coloured by their first vertex, a little blur and noise, on a plain background."""
    import cv2

    from munet.geometry.raster import rasterize_zbuffer

    width, height = IMAGE_SIZE
    K, R, t = synthetic_camera()
    cam = vertices_m.astype(np.float64) @ R.T + t
    uv = cam[:, :2] / cam[:, 2:] * K[[0, 1], [0, 1]] + K[:2, 2]
    face_ids, _ = rasterize_zbuffer(uv, cam[:, 2], faces, height, width)
    tri = cam[faces]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    light = np.array([-0.3, -0.5, -0.8]) / np.linalg.norm([-0.3, -0.5, -0.8])
    shade = 0.4 + 0.6 * np.abs(normals @ light)
    face_rgb = vertex_colours[faces[:, 0]] * shade[:, None]
    rgb = np.empty((height, width, 3), np.float32)
    rgb[:] = BACKGROUND_RGB
    covered = face_ids >= 0
    rgb[covered] = face_rgb[face_ids[covered]]
    rgb = cv2.GaussianBlur(rgb, (0, 0), 0.7)
    rgb += np.random.default_rng(0).normal(0.0, 2.0, rgb.shape).astype(np.float32)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


# ---- measures ----------------------------------------------------------------------------------------


def rest_metrics(body_rest: np.ndarray, clothed_rest: np.ndarray, faces: np.ndarray, regions) -> dict:
    """Figures of a Clothed rest surface against its Body (both (V, 3) metres): bumpiness_mm (95th
    percentile of |L d| over the surface vertices; bumpiness_scalar_mm: the same of the offset's length
    along the Body's rest normal, which a constant layer over a curved body leaves at 0), per-region offset percentiles (p50/p95/max, mm), inside
    (count and share of vertices with offset along the Body's rest normal < -0.5 mm; deepest, mm)."""
    from munet.fitting.regions import ARM_L, ARM_R, LEG_L, LEG_R, TORSO
    from munet.geometry.mesh import mean_neighbour_operator, vertex_normals

    d = clothed_rest.astype(np.float64) - body_rest.astype(np.float64)
    surface = ~regions.inner
    operator = mean_neighbour_operator(faces, len(d))
    lap = np.linalg.norm(d - operator @ d, axis=1) * 1000.0
    size = np.linalg.norm(d, axis=1) * 1000.0
    parts = {"face": regions.face, "hands": regions.hands, "feet": regions.feet, "scalp": regions.scalp > 0.5,
             "torso": regions.limb == TORSO, "arms": np.isin(regions.limb, (ARM_L, ARM_R)),
             "legs": np.isin(regions.limb, (LEG_L, LEG_R)) & ~regions.feet}
    along = (d * vertex_normals(body_rest.astype(np.float64), faces)).sum(1) * 1000.0
    out = {"bumpiness_mm": round(float(np.percentile(lap[surface], 95)), 2)}
    out["bumpiness_upper_mm"] = 0.0  # filled below, after the region figures
    out["bumpiness_scalar_mm"] = round(float(np.percentile(np.abs(along - operator @ along)[surface], 95)), 2)
    for name, members in parts.items():
        values = size[members & surface]
        out[f"{name}_mm"] = [round(float(np.percentile(values, q)), 1) for q in (50, 95, 100)]
    out["bumpiness_upper_mm"] = round(float(np.percentile(lap[surface & ~regions.lower_body], 95)), 2)
    inside = (along < -0.5) & surface
    out["inside"] = int(inside.sum())
    out["inside_share"] = round(float(inside.mean()), 4)
    out["inside_deepest_mm"] = round(float(-along[surface].min()), 1) if inside.any() else 0.0
    out["inside_nearest"] = inside_nearest(body_rest, clothed_rest, faces, surface)
    return out


def inside_nearest(body_rest: np.ndarray, clothed_rest: np.ndarray, faces: np.ndarray, surface: np.ndarray) -> int:
    """Clothed vertices inside the Body by the nearest Body vertex: the offset from it along its normal below
    -0.5 mm (counts a skirt's re-placed vertices by where they are, not by where they came from)."""
    from scipy.spatial import cKDTree

    from munet.geometry.mesh import vertex_normals

    body = body_rest.astype(np.float64)
    normals = vertex_normals(body, faces)
    index = np.flatnonzero(surface)
    _, nearest = cKDTree(body[index]).query(clothed_rest[surface].astype(np.float64))
    q = index[nearest]
    return int((((clothed_rest[surface] - body[q]) * normals[q]).sum(1) < -0.0005).sum())


def chamfer_cm(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric Chamfer distance between two point sets (N, 3), (M, 3) metres: mean of both directions'
    mean nearest-neighbour distances, centimetres."""
    from scipy.spatial import cKDTree

    ab = cKDTree(b).query(a)[0].mean()
    ba = cKDTree(a).query(b)[0].mean()
    return float(50.0 * (ab + ba))


def garment_summary(reconstruction) -> dict:
    """What the report says about the clothes (empty before issue 12's detector)."""
    garments = (reconstruction.report.to_json().get("clothed_mesh") or {}).get("garments") or {}
    return {k: garments.get(k) for k in ("garment", "hem_leg_u", "hair") if k in garments}


# ---- runs ----------------------------------------------------------------------------------------------


def run_photos(pipeline, options, regions, images: pathlib.Path, render_dir: pathlib.Path | None = None) -> dict:
    """The rest figures of the shared photos (and their views in ``render_dir``)."""
    results = {}
    for name in PHOTOS:
        recon = pipeline.reconstruct((images / name).read_bytes(), options)
        if render_dir is not None:
            save_views(recon, render_dir / f"{pathlib.Path(name).stem}_views.png", regions)
        figures = rest_metrics(recon.body.rest_vertices_m, recon.clothed.rest_vertices_m, recon.body.faces, regions)
        figures["clothing_ms"] = recon.report.timings_ms.stages_ms.get("clothing")
        figures.update(garment_summary(recon))
        results[name] = figures
        print(f"{name:18s} {json.dumps(figures)}", flush=True)
    return results


def run_pairs(pipeline, options, regions, count: int, render_dir: pathlib.Path | None = None) -> dict:
    """Pose consistency over ``count`` synthetic pairs (seeds 0..count-1)."""
    people = SyntheticPeople()
    faces = people.body.faces.numpy()
    surface = ~regions.inner
    rows = []
    for k in range(count):
        person = people.person(k, PAIR_GARMENTS[k % len(PAIR_GARMENTS)])
        recons = []
        for pose in range(2):
            photo = people.render(person, pose)
            if render_dir is not None:
                import cv2

                cv2.imwrite(str(render_dir / f"pair{k}_{pose}.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
            recons.append(pipeline.reconstruct(photo, options))
            if render_dir is not None and k < 2:
                save_views(recons[-1], render_dir / f"pair{k}_{pose}_views.png", regions)
        clothed = chamfer_cm(*(r.clothed.rest_vertices_m[surface] for r in recons))
        body = chamfer_cm(*(r.body.rest_vertices_m[surface] for r in recons))
        a, b = recons
        moved = a.body.rest_vertices_m + (b.clothed.rest_vertices_m - b.body.rest_vertices_m)  # B's clothes on A's body
        clothes_only = chamfer_cm(a.clothed.rest_vertices_m[surface], moved[surface])
        detected = [garment_summary(r) for r in recons]
        row = {"pair": k, "garment": person.garment, "bottom": int(person.params.bottom[0]),
               "hair": int(person.params.hair[0]), "clothed_chamfer_cm": round(clothed, 2),
               "body_chamfer_cm": round(body, 2), "clothes_on_one_body_cm": round(clothes_only, 2), "detected": detected,
               "rest": [rest_metrics(r.body.rest_vertices_m, r.clothed.rest_vertices_m, faces, regions)["bumpiness_mm"]
                        for r in recons]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    values = [r["clothed_chamfer_cm"] for r in rows]
    return {"pairs": rows, "clothed_chamfer_cm_mean": round(float(np.mean(values)), 2),
            "clothed_chamfer_cm_max": round(float(np.max(values)), 2),
            "body_chamfer_cm_mean": round(float(np.mean([r["body_chamfer_cm"] for r in rows])), 2),
            "clothes_on_one_body_cm_mean": round(float(np.mean([r["clothes_on_one_body_cm"] for r in rows])), 2)}


def save_views(reconstruction, path: pathlib.Path, regions) -> None:
    """A PNG of the Clothed surface: the library's turntable (front, side, back of the pose, rest from the
    front) over front, side and back views of the rest pose coloured by offset (grey 0 to blue 5 cm)."""
    import cv2

    from munet.render_preview import render_orthographic
    from munet.turntable import render_turntable

    surface = reconstruction.clothed
    offset = np.linalg.norm(surface.rest_vertices_m - reconstruction.body.rest_vertices_m, axis=1)
    level = np.clip(offset / 0.05, 0, 1)[:, None]
    colours = (1 - level) * np.array([200.0, 200, 200]) + level * np.array([60.0, 120, 240])
    panels = []
    for yaw in (-np.pi / 2, 0.0, np.pi / 2):  # front, the person's left side, back
        c, s = np.cos(yaw), np.sin(yaw)
        turned = surface.rest_vertices_m @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]]).T
        panels.append(render_orthographic(turned, surface.faces, colours, "side", (512, 512)))
    top = render_turntable(reconstruction, 384)
    bottom = np.concatenate(panels, 1)
    bottom = cv2.resize(bottom, (top.shape[1], int(round(bottom.shape[0] * top.shape[1] / bottom.shape[1]))))
    cv2.imwrite(str(path), cv2.cvtColor(np.concatenate([top, bottom], 0), cv2.COLOR_RGB2BGR))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=6, help="synthetic pose-consistency pairs (0: none)")
    parser.add_argument("--no-photos", action="store_true", help="skip the shared photos")
    parser.add_argument("--json", metavar="OUT.json", help="also write the results as JSON")
    parser.add_argument("--render", metavar="DIR", help="save the synthetic photos and views of the results here")
    args = parser.parse_args(argv)

    from munet.fitting.regions import body_regions
    from munet.pipeline import Pipeline
    from munet.reconstruction import ReconstructOptions

    started = time.perf_counter()
    pipeline = Pipeline()
    regions = body_regions(pipeline._body("anny", "smpl24"))
    options = ReconstructOptions(texture=False)
    results: dict = {"load_s": round(time.perf_counter() - started, 1)}
    images = pathlib.Path(__file__).resolve().parents[1] / "tests" / "data"
    render_dir = None
    if args.render:
        render_dir = pathlib.Path(args.render)
        render_dir.mkdir(parents=True, exist_ok=True)
    if not args.no_photos:
        results["photos"] = run_photos(pipeline, options, regions, images, render_dir)
        times = [r["clothing_ms"] for r in results["photos"].values() if r["clothing_ms"] is not None]
        if times:
            print(f"clothing stage: median {statistics.median(times):.0f} ms over {len(times)} photos")
    if args.pairs:
        results["pose_consistency"] = run_pairs(pipeline, options, regions, args.pairs, render_dir)
        pc = results["pose_consistency"]
        print(f"pose consistency over {args.pairs} pairs: Clothed rest Chamfer mean {pc['clothed_chamfer_cm_mean']} cm "
              f"(max {pc['clothed_chamfer_cm_max']}), Body rest Chamfer mean {pc['body_chamfer_cm_mean']} cm, "
              f"the clothes alone (B's offsets on A's body) {pc['clothes_on_one_body_cm_mean']} cm")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
