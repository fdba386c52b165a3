"""Mesh utilities: normals, neighbourhoods, smoothing operators, outline vertices.

Meshes are (V, 3) vertices with (F, 3) int faces, counter-clockwise seen from outside (so face normals
point outwards). Numpy for one-off work, torch where a fit needs gradients.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import scipy.sparse
import torch


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals (V, 3) float32 of a mesh (vertices (V, 3), faces (F, 3)); computed
    in float64 by ``vertex_normals_torch``."""
    vertices_t = torch.from_numpy(np.asarray(vertices, np.float64))[None]
    faces_t = torch.from_numpy(np.asarray(faces, np.int64))
    return vertex_normals_torch(vertices_t, faces_t)[0].numpy().astype(np.float32)


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit face normals (F, 3) float64 of a mesh (vertices (V, 3), faces (F, 3)); outwards for faces
    counter-clockwise seen from outside, zero for degenerate faces."""
    tri = np.asarray(vertices, np.float64)[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def face_normals_torch(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Batched, differentiable unit face normals: vertices (B, V, 3), faces (F, 3) int64 -> (B, F, 3)
    (counter-clockwise seen from outside = outwards; degenerate faces give zero)."""
    tri = vertices[:, faces]  # (B, F, 3, 3)
    n = torch.linalg.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0], dim=-1)
    return n / n.norm(dim=-1, keepdim=True).clamp(min=1e-12)


@functools.lru_cache(maxsize=16)
def _incidence(faces_key: bytes, num_faces: int, num_vertices: int, dtype: torch.dtype, device: torch.device,
               ) -> torch.Tensor:
    """(V, F) sparse CSR: 1 where the vertex is a corner of the face (cached per face list)."""
    faces = torch.frombuffer(bytearray(faces_key), dtype=torch.int64).reshape(num_faces, 3)
    rows = faces.reshape(-1)
    cols = torch.arange(num_faces).repeat_interleave(3)
    with warnings.catch_warnings():  # "sparse CSR support is in beta": it is fine for a matmul
        warnings.simplefilter("ignore", UserWarning)
        coo = torch.sparse_coo_tensor(torch.stack([rows, cols]), torch.ones(rows.numel(), dtype=dtype),
                                      (num_vertices, num_faces), check_invariants=True)
        return coo.coalesce().to_sparse_csr().to(device)


def vertex_normals_torch(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Batched, differentiable area-weighted unit vertex normals: (B, V, 3), faces (F, 3) -> (B, V, 3).

    The face normals (cross products, twice the area long) are summed per vertex by a cached sparse
    vertex-face incidence matrix (a few times faster than scattering them on CPU).
    """
    batch, num_vertices = vertices.shape[:2]
    tri = vertices[:, faces]  # (B, F, 3, 3)
    n = torch.linalg.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0], dim=-1)  # (B, F, 3)
    key = faces.detach().to("cpu", torch.int64).contiguous().numpy().tobytes()
    incidence = _incidence(key, faces.shape[0], num_vertices, n.dtype, n.device)
    summed = incidence @ n.permute(1, 0, 2).reshape(faces.shape[0], batch * 3)  # (V, B * 3)
    out = summed.reshape(num_vertices, batch, 3).permute(1, 0, 2)
    return out / out.norm(dim=-1, keepdim=True).clamp(min=1e-12)


def adjacency(faces: np.ndarray, num_vertices: int) -> scipy.sparse.csr_matrix:
    """(V, V) symmetric 0/1 vertex adjacency (edges of the faces), CSR float64."""
    faces = np.asarray(faces, np.int64)
    rows = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2], faces[:, 1], faces[:, 2], faces[:, 0]])
    cols = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0], faces[:, 0], faces[:, 1], faces[:, 2]])
    matrix = scipy.sparse.coo_matrix((np.ones(rows.size), (rows, cols)), shape=(num_vertices, num_vertices)).tocsr()
    matrix.data[:] = 1.0  # duplicates (shared edges) summed above
    return matrix


def mean_neighbour_operator(faces: np.ndarray, num_vertices: int) -> scipy.sparse.csr_matrix:
    """(V, V) row-stochastic matrix M: ``M @ x`` is the mean of each vertex's neighbours (uniform
    Laplacian ``L = I - M``). Isolated vertices keep their own value."""
    adj = adjacency(faces, num_vertices)
    degree = np.asarray(adj.sum(1)).ravel()
    isolated = degree == 0
    adj = adj + scipy.sparse.diags(isolated.astype(np.float64))
    degree = np.where(isolated, 1.0, degree)
    return (scipy.sparse.diags(1.0 / degree) @ adj).tocsr()


def to_torch_sparse(matrix: scipy.sparse.spmatrix, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A scipy sparse matrix as a torch sparse CSR tensor."""
    csr = matrix.tocsr()
    return torch.sparse_csr_tensor(
        torch.from_numpy(csr.indptr.astype(np.int64)),
        torch.from_numpy(csr.indices.astype(np.int64)),
        torch.from_numpy(csr.data).to(dtype),
        size=csr.shape,
    )


def smooth_field(values: np.ndarray, operator: scipy.sparse.spmatrix, iterations: int, keep: np.ndarray | None = None,
                 ) -> np.ndarray:
    """Diffuse a per-vertex field over the mesh by repeated neighbour averaging.

    values: (V,) or (V, C). operator: ``mean_neighbour_operator``. keep: optional (V,) bool, vertices whose
    values stay fixed (Dirichlet constraints: diffusion fills the rest from them).
    """
    out = np.array(values, np.float64)
    fixed = None if keep is None else out[keep].copy()
    for _ in range(iterations):
        out = operator @ out
        if keep is not None:
            out[keep] = fixed
    return out


def outline_vertices(vertices_px: np.ndarray, silhouette: np.ndarray, candidates: np.ndarray | None = None,
                     max_distance_px: float = 2.5) -> np.ndarray:
    """Vertices that lie on the outline of a rendered silhouette.

    vertices_px: (V, 2) projected vertices (pixels); silhouette: (H, W) bool, the mesh's own silhouette.
    candidates: optional (C,) vertex indices to choose from (e.g. front-and-side vertices); all by default.
    Returns sorted unique vertex indices: for every outline pixel of the silhouette, the nearest candidate
    vertex, kept when it lies within ``max_distance_px`` of that pixel.

    Only the candidates in a band around the outline enter the search: a vertex farther than
    ``max_distance_px`` from every outline pixel can be no kept pixel's nearest (the kept pixels' nearest
    vertices all lie in the band, and the band's vertices are a subset of all), so the result is the same as
    searching every vertex, for a tree of the band's few thousand vertices instead of the whole mesh's.
    """
    from scipy.spatial import cKDTree

    import cv2

    sil = silhouette.astype(np.uint8)
    eroded = cv2.erode(sil, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    edge = sil & (1 - eroded)
    found = cv2.findNonZero(edge)  # (N, 1, 2) int (x, y), or None: ~5x faster than np.nonzero here
    if found is None:
        return np.zeros(0, np.int64)
    pixels = found[:, 0, :].astype(np.float64) + 0.5
    index = np.arange(len(vertices_px)) if candidates is None else np.asarray(candidates)
    index = index[_near_pixels(vertices_px[index], edge, max_distance_px)]
    if index.size == 0:
        return np.zeros(0, np.int64)
    tree = cKDTree(vertices_px[index])
    distance, nearest = tree.query(pixels, k=1)
    return np.unique(index[nearest[distance <= max_distance_px]])


def _near_pixels(points_px: np.ndarray, pixels: np.ndarray, distance_px: float) -> np.ndarray:
    """(N,) bool: which points (N, 2) (x, y, pixels) may lie within ``distance_px`` of a set pixel's centre of
    ``pixels`` (H, W) uint8 (a superset: the pixels dilated by a square of that radius plus one, so a point's
    containing pixel is within reach). Points off the image are near when a set pixel is within reach of the
    border (they could still be nearest to a border pixel)."""
    import cv2

    reach = int(np.ceil(distance_px)) + 1
    height, width = pixels.shape
    band = cv2.dilate(pixels, np.ones((2 * reach + 1, 2 * reach + 1), np.uint8))
    band = np.pad(band, reach, mode="edge")  # points up to ``reach`` beyond the image read its border
    cols = np.floor(points_px[:, 0]).astype(np.int64) + reach
    rows = np.floor(points_px[:, 1]).astype(np.int64) + reach
    inside = (cols >= 0) & (cols < width + 2 * reach) & (rows >= 0) & (rows < height + 2 * reach)
    near = np.zeros(len(points_px), bool)
    near[inside] = band[rows[inside], cols[inside]] > 0
    return near


def mask_outline(mask: np.ndarray, include_image_border: bool = False) -> np.ndarray:
    """(N, 2) float pixel centres (x, y) of the boundary pixels of a binary mask (H, W).

    include_image_border: also count mask pixels on the photo's edge as boundary (by default a mask cut
    by the frame has no outline there: the person goes on beyond it).
    """
    import cv2

    binary = (np.asarray(mask) > 0).astype(np.uint8)
    border_value = 0 if include_image_border else 1
    eroded = cv2.erode(binary, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=border_value)
    rows, cols = np.nonzero(binary & (1 - eroded))
    return np.stack([cols + 0.5, rows + 0.5], 1).astype(np.float64)
