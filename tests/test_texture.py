"""munet.texture: Anny's UV atlas and the texture baked into it.

On the real photos (through the pipeline, one reconstruction per photo for the whole module): the texture
is an atlas in Anny's layout, shows the photo where the surface is seen, and its unseen side is neither one
flat colour nor foreign to the garment. On synthetic scenes with a known answer: a hand in front of the
face keeps its colour off the face, a striped shirt's back continues the stripes, and no background pixel
enters even when the surface sticks out of the person a little.
"""

from __future__ import annotations

import io
import json
import struct
import types

import cv2
import numpy as np
import pytest
import torch

from munet.reconstruction import Camera, Reconstruction, ReconstructOptions
from photos import real_photo

PHOTOS = ("lunge.jpg", "astronaut.png", "grace_hopper.jpg")
MAP_RESOLUTION = 512
SKIN, HAND_GREEN, MAGENTA = (225, 185, 160), (40, 200, 60), (255, 0, 255)
STRIPE_DARK, STRIPE_LIGHT = (40, 50, 140), (235, 235, 225)
# a pose that puts the right hand 12 cm in front of the face (found by a small fit of the hand's centre)
HAND_ON_FACE = {"right_shoulder": (-0.792, -0.690, 0.793), "right_elbow": (-0.866, -0.552, 0.634)}


@pytest.fixture(scope="module")
def pipeline():
    from munet.pipeline import default_pipeline

    return default_pipeline()


@pytest.fixture(scope="module")
def reconstructions(pipeline) -> dict[str, Reconstruction]:
    return {name: pipeline.reconstruct(real_photo(name)) for name in PHOTOS}


@pytest.fixture(scope="module")
def atlas(anny_body):
    from munet.texture import uv_atlas

    return uv_atlas(anny_body)


@pytest.fixture(scope="module")
def texels(atlas):
    from munet.texture import texel_map

    return texel_map(atlas, MAP_RESOLUTION)


def _decode(texture) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(texture.image_bytes)).convert("RGB"))


def _texel_colours(image: np.ndarray, texels) -> np.ndarray:
    """(T, 3) float64: the atlas image (area-averaged to the texel map's size) at each covered texel."""
    small = cv2.resize(image, (texels.resolution, texels.resolution), interpolation=cv2.INTER_AREA)
    return small.reshape(-1, 3)[texels.texel].astype(np.float64)


def _uv_quality(uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signed area (F,) and shape quality (F,) of UV triangles (4 sqrt(3) area / sum of squared edges: 1 for
    an equilateral triangle, 0 for a degenerate one)."""
    uv = uv.astype(np.float64)
    a, b, c = uv[:, 0], uv[:, 1], uv[:, 2]
    signed = 0.5 * ((b - a)[:, 0] * (c - a)[:, 1] - (c - a)[:, 0] * (b - a)[:, 1])
    edges = ((b - a) ** 2).sum(1) + ((c - b) ** 2).sum(1) + ((a - c) ** 2).sum(1)
    return signed, 4 * np.sqrt(3) * np.abs(signed) / np.maximum(edges, 1e-30)


# ---- the layout ------------------------------------------------------------------------------------------


def test_anny_uv_layout_covers_every_face_without_degenerate_or_flipped_triangles(anny_body):
    uv = anny_body.uv_per_corner()
    assert uv.shape == (anny_body.faces.shape[0], 3, 2) and uv.dtype == np.float32
    assert np.isfinite(uv).all() and uv.min() >= 0.0 and uv.max() <= 1.0
    signed, quality = _uv_quality(uv)
    assert (signed > 0).all(), "every UV triangle keeps the mesh's winding (none mirrored)"
    assert quality.min() > 0.02, f"a degenerate UV triangle: quality {quality.min():.4f}"


def test_bodies_without_uvs_have_no_atlas():
    from munet.texture import uv_atlas

    assert uv_atlas(types.SimpleNamespace(uv_per_corner=lambda: None)) is None  # SMPL: projected texture


def test_texel_map_knows_where_each_texel_lies(atlas, texels):
    from munet.texture.atlas import BODY, HEAD, REGIONS

    assert len(texels.texel) > 0.4 * MAP_RESOLUTION ** 2  # the islands fill a good part of the square
    assert np.allclose(texels.bary.sum(1), 1.0, atol=1e-5) and (texels.bary >= 0).all()
    counts = np.bincount(texels.region, minlength=len(REGIONS))
    assert counts[BODY] > counts[HEAD] > 0 and (counts > 0).sum() >= 5
    # a texel's mirror lies on the other side of the body at the same height and left-right position
    mirror = np.einsum("tk,tkc->tc", texels.mirror_bary, atlas.template_vertices_m[texels.mirror_vertex])
    back = (texels.region == BODY) & (texels.template_normal[:, 1] > 0.7)
    assert np.abs(mirror[back][:, [0, 2]] - texels.template_m[back][:, [0, 2]]).max() < 0.01
    assert np.median(mirror[back, 1] - texels.template_m[back, 1]) < -0.1  # it moved to the front


def test_pull_push_keeps_what_is_known_and_fills_the_rest():
    from munet.texture.fill import pull_push

    rng = np.random.default_rng(0)
    colour = rng.uniform(0, 255, (64, 80, 3)).astype(np.float32)
    weight = np.zeros((64, 80), np.float32)
    weight[10:20, 10:30] = 1.0
    filled = pull_push(colour, weight)
    assert filled.shape == colour.shape and np.isfinite(filled).all()
    np.testing.assert_allclose(filled[10:20, 10:30], colour[10:20, 10:30], atol=1e-3)
    known = colour[10:20, 10:30].reshape(-1, 3)
    assert (filled >= known.min(0) - 1e-3).all() and (filled <= known.max(0) + 1e-3).all()


# ---- the real photos -------------------------------------------------------------------------------------


def test_pipeline_texture_is_an_atlas_in_annys_layout(reconstructions, anny_body):
    for name, reconstruction in reconstructions.items():
        texture = reconstruction.texture
        assert texture.mime_type == "image/jpeg" and (texture.width, texture.height) == (2048, 2048), name
        assert _decode(texture).shape == (2048, 2048, 3)
        np.testing.assert_array_equal(reconstruction.clothed.uv_per_corner, anny_body.uv_per_corner())
        np.testing.assert_array_equal(reconstruction.body.uv_per_corner, reconstruction.clothed.uv_per_corner)
        signed, quality = _uv_quality(reconstruction.clothed.uv_per_corner)
        assert (signed > 0).all() and quality.min() > 0.02, f"{name}: a clothed face maps to a degenerate UV triangle"


def test_texture_shows_the_photo_where_the_surface_is_seen(reconstructions):
    """Sampling the texture at a visible face's UV gives the photo's colour where that face projects."""
    from munet.detect import load_image
    from munet.texture import visible_faces

    lunge = reconstructions["lunge.jpg"]
    texture = _decode(lunge.texture).astype(np.float64)
    photo = load_image(real_photo("lunge.jpg")).rgb.astype(np.float64)
    surface = lunge.clothed
    visible = np.flatnonzero(visible_faces(surface.posed_vertices_m, surface.faces, lunge.camera))
    chosen = visible[:: max(1, visible.size // 400)]
    uv_centre = surface.uv_per_corner[chosen].mean(1)
    tex_px = np.stack([uv_centre[:, 0] * lunge.texture.width, (1 - uv_centre[:, 1]) * lunge.texture.height], 1)
    photo_px, _ = lunge.camera.project(surface.posed_vertices_m[surface.faces[chosen]].mean(1).astype(np.float64))
    from_texture = texture[tex_px[:, 1].astype(int).clip(0, texture.shape[0] - 1), tex_px[:, 0].astype(int).clip(0, texture.shape[1] - 1)]
    from_photo = photo[photo_px[:, 1].astype(int).clip(0, photo.shape[0] - 1), photo_px[:, 0].astype(int).clip(0, photo.shape[1] - 1)]
    assert np.median(np.abs(from_texture - from_photo)) < 20  # JPEG and resampling, not a wrong mapping


def _torso_sides(reconstruction: Reconstruction, texels) -> tuple[np.ndarray, np.ndarray]:
    """Masks over the texels: the chest/upper back (template) on the side the camera sees and on the other."""
    from munet.texture.atlas import BODY

    template = texels.template_m
    chest_height = (template[:, 2] > 0.95) & (template[:, 2] < 1.25)  # below the shoulder blades
    torso = (texels.region == BODY) & chest_height & (np.abs(template[:, 0]) < 0.12)
    from munet.geometry.mesh import vertex_normals

    posed = reconstruction.clothed.posed_vertices_m.astype(np.float64)
    normals = vertex_normals(posed, reconstruction.clothed.faces)
    point = np.einsum("tk,tkc->tc", texels.bary, posed[texels.vertex])
    normal = np.einsum("tk,tkc->tc", texels.bary, normals[texels.vertex])
    camera = reconstruction.camera
    ray = -camera.R_world_to_cam.T @ camera.t_world_to_cam_m - point
    facing = (normal * ray).sum(1) / np.linalg.norm(normal, axis=1) / np.linalg.norm(ray, axis=1)
    return torso & (facing > 0.4), torso & (facing < -0.4)


@pytest.mark.parametrize("name", PHOTOS)
def test_unseen_side_is_not_one_colour_and_continues_the_garment(reconstructions, texels, name):
    reconstruction = reconstructions[name]
    colours = _texel_colours(_decode(reconstruction.texture), texels)
    seen, unseen = _torso_sides(reconstruction, texels)
    assert seen.sum() > 200 and unseen.sum() > 200
    luminance = colours @ np.array([0.299, 0.587, 0.114])
    spread_seen, spread_unseen = luminance[seen].std(), luminance[unseen].std()
    assert spread_unseen > 0.25 * spread_seen, \
        f"{name}: the unseen torso is flat ({spread_unseen:.1f} vs {spread_seen:.1f})"
    # the bake shades the unseen side by BACK_SHADE on purpose (a back is not lit like the front): compare
    # with the seen garment's colour under that same shade
    from munet.texture.bake import BACK_SHADE

    gap = np.linalg.norm(BACK_SHADE * colours[seen].mean(0) - colours[unseen].mean(0))
    assert gap < 40, f"{name}: the unseen torso's mean colour is {gap:.0f} away from the seen garment's (shaded)"


# ---- synthetic scenes with a known answer ----------------------------------------------------------------


def _front_camera(width: int = 600, height: int = 800, focal: float = 1000.0) -> Camera:
    """A camera 3 m in front of the rest pose (which faces -Y), at hip height, looking along +Y."""
    rotation = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    centre = np.array([0.0, -3.0, 0.85])
    return Camera((focal, focal), (width / 2, height / 2), (width, height), rotation, -rotation @ centre)


def _render_flat(vertices: np.ndarray, faces: np.ndarray, face_rgb: np.ndarray, camera: Camera,
                 background=MAGENTA) -> tuple[np.ndarray, np.ndarray]:
    """A flat-coloured photo of a mesh (nearest face per pixel) and its exact person mask."""
    from munet.geometry.raster import rasterize

    xy, depth = camera.project(vertices.astype(np.float64))
    width, height = camera.image_size
    raster = rasterize(torch.from_numpy(xy[None]).float(), torch.from_numpy(faces.astype(np.int64)), (width, height),
                       depth=torch.from_numpy(depth[None]).float(), want_face_id=True)
    face_id = raster.face_id[0].numpy()
    photo = np.empty((height, width, 3), np.uint8)
    photo[:] = background
    photo[face_id >= 0] = face_rgb[face_id[face_id >= 0]]
    return photo, face_id >= 0


def _striped_shirt(atlas) -> np.ndarray:
    """(F, 3) uint8 face colours: skin on head and hands, horizontal 8 cm stripes everywhere else."""
    from munet.texture.atlas import BODY

    height = atlas.template_vertices_m[atlas.faces].mean(1)[:, 2]
    colours = np.where((np.floor(height / 0.08) % 2 == 0)[:, None], STRIPE_DARK, STRIPE_LIGHT)
    colours[atlas.face_region != BODY] = SKIN
    return colours.astype(np.uint8)


def test_a_hand_in_front_of_the_face_keeps_its_colour_off_the_face(anny_body, atlas, texels):
    from munet.body.skeleton import SMPL24_INDEX
    from munet.texture import bake_texture
    from munet.texture.atlas import HAND, HEAD

    pose = torch.zeros(1, 24, 3)
    for joint, axis_angle in HAND_ON_FACE.items():
        pose[0, SMPL24_INDEX[joint]] = torch.tensor(axis_angle)
    with torch.no_grad():
        rest_vertices, rest_joints = anny_body.rest(anny_body.default_shape)
        posed = anny_body.pose(rest_vertices, rest_joints, pose).vertices_m[0].numpy().astype(np.float64)
    right_hand = (atlas.face_region == HAND) & (atlas.template_vertices_m[atlas.faces].mean(1)[:, 0] < 0)
    colours = _striped_shirt(atlas)
    colours[right_hand] = HAND_GREEN
    camera = _front_camera()
    photo, mask = _render_flat(posed, atlas.faces, colours, camera)
    green_px = (photo == HAND_GREEN).all(-1)
    assert green_px.sum() > 500  # the hand shows, over the face
    baked = bake_texture(photo, atlas, posed, camera, mask, size=1024)
    texel_rgb = _texel_colours(_decode(baked.texture), texels)
    greenish = (texel_rgb[:, 1] > texel_rgb[:, 0] + 60) & (texel_rgb[:, 1] > texel_rgb[:, 2] + 60)
    face = (texels.region == HEAD) & (texels.template_normal[:, 1] < -0.8)
    assert face.sum() > 300
    assert greenish[face].mean() < 0.005, f"{greenish[face].mean():.1%} of the face took the hand's colour"
    # and the hand keeps it: the right hand's palm and back, whichever faces the camera, are green
    hand = (texels.region == HAND) & (texels.template_m[:, 0] < 0)
    assert greenish[hand].mean() > 0.4


def test_the_back_of_a_striped_shirt_continues_its_stripes(atlas, texels):
    from munet.texture import bake_texture
    from munet.texture.atlas import BODY

    template = atlas.template_vertices_m.astype(np.float64)
    camera = _front_camera()
    photo, mask = _render_flat(template, atlas.faces, _striped_shirt(atlas), camera)
    baked = bake_texture(photo, atlas, template, camera, mask, size=1024)
    colours = _texel_colours(_decode(baked.texture), texels)
    z = texels.template_m[:, 2]
    back = (texels.region == BODY) & (texels.template_normal[:, 1] > 0.7) & (z > 0.9) & (z < 1.35)
    assert back.sum() > 200
    # away from the stripes' edges, a back texel is dark where the front's stripe at its height is dark
    phase = (z / 0.08) % 1.0
    clear = back & (phase > 0.25) & (phase < 0.75)
    dark = (np.floor(z / 0.08) % 2 == 0)
    luminance = colours @ np.array([0.299, 0.587, 0.114])
    assert luminance[clear & ~dark].mean() - luminance[clear & dark].mean() > 80


def test_the_eroded_mask_keeps_the_background_out(atlas, texels):
    """The surface sticks out of the person by 1.2 cm and the mask by 2 px (as a fit and a segmenter do):
    still no magenta background in the atlas."""
    from munet.geometry.mesh import vertex_normals
    from munet.texture import bake_texture

    template = atlas.template_vertices_m.astype(np.float64)
    camera = _front_camera()
    photo, mask = _render_flat(template, atlas.faces, _striped_shirt(atlas), camera)
    mask = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    inflated = template + 0.012 * vertex_normals(template, atlas.faces)
    image = _decode(bake_texture(photo, atlas, inflated, camera, mask, size=1024).texture).astype(np.int64)
    magenta = (image[..., 0] > 150) & (image[..., 2] > 150) & (image[..., 1] < 110)
    assert magenta.sum() == 0, f"{magenta.sum()} background-coloured texels"


def test_bake_sizes_and_the_option(atlas):
    from munet.errors import BadOptionsError
    from munet.texture import bake_texture

    template = atlas.template_vertices_m.astype(np.float64)
    camera = _front_camera(300, 400, 500.0)
    photo, mask = _render_flat(template, atlas.faces, _striped_shirt(atlas), camera)
    baked = bake_texture(photo, atlas, template, camera, mask, size=1536)
    assert (baked.texture.width, baked.texture.height) == (1536, 1536) and baked.image.shape == (1536, 1536, 3)
    assert 0.1 < baked.seen_fraction < 0.7 and baked.mirrored_fraction > 0.05
    for size in (512, 8192):
        with pytest.raises(ValueError, match="texture size"):
            bake_texture(photo, atlas, template, camera, mask, size=size)
        with pytest.raises(BadOptionsError, match="texture_size"):
            ReconstructOptions(texture_size=size).validate()
    assert ReconstructOptions(texture_size=4096).validate().texture_size == 4096


# ---- export ----------------------------------------------------------------------------------------------


def _glb_json(path) -> dict:
    data = path.read_bytes()
    length, kind = struct.unpack_from("<I4s", data, 12)
    assert kind == b"JSON"
    return json.loads(data[20 : 20 + length])


def test_glb_carries_the_atlas_with_vertices_split_at_uv_seams(reconstructions, tmp_path):
    from munet.export import write_glb

    reconstruction = reconstructions["grace_hopper.jpg"]
    path = tmp_path / "character.glb"
    write_glb(reconstruction, path)
    gltf = _glb_json(path)
    assert gltf["images"][0]["mimeType"] == "image/jpeg"
    surface = reconstruction.clothed
    corners = np.concatenate([surface.faces.reshape(-1, 1), np.round(surface.uv_per_corner.reshape(-1, 2) * 1e6)], 1)
    unique_corners = len(np.unique(corners, axis=0))
    for mesh in gltf["meshes"]:
        attributes = mesh["primitives"][0]["attributes"]
        positions = gltf["accessors"][attributes["POSITION"]]["count"]
        assert gltf["accessors"][attributes["TEXCOORD_0"]]["count"] == positions == unique_corners
        assert positions > len(surface.rest_vertices_m)  # seams split vertices; every face keeps its own UVs
