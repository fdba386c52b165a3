"""SMPL from the user's own licensed files, through ``smplx``, converted to our frame.

The original SMPL pickles hold ``chumpy`` arrays, and chumpy does not import on Python 3.11. We read
them with a restricted unpickler that only accepts numpy, scipy.sparse and chumpy array classes (the
chumpy ones become plain numpy arrays) and refuses anything else, so a hostile pickle cannot run code.

SMPL's frame is Y up, +Z forward; ours is Blender's (Z up, faces -Y): (x, y, z) -> (x, -z, y).
"""

from __future__ import annotations

import logging
import os
import pathlib
import pickle

import numpy as np
import torch

from munet.body.base import BodyModel, BodyOutput
from munet.body.skeleton import SMPL24_JOINTS, SMPL24_PARENTS
from munet.errors import SmplFilesMissingError

log = logging.getLogger(__name__)

SMPL_DIR_ENV = "MUNET_SMPL_DIR"
SMPL_TO_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])  # v_b = C @ v_smpl
_FILE_NAMES = {
    "neutral": ("SMPL_NEUTRAL.pkl", "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl", "basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl"),
    "male": ("SMPL_MALE.pkl", "basicmodel_m_lbs_10_207_0_v1.0.0.pkl", "basicmodel_m_lbs_10_207_0_v1.1.0.pkl"),
    "female": ("SMPL_FEMALE.pkl", "basicModel_f_lbs_10_207_0_v1.0.0.pkl", "basicmodel_f_lbs_10_207_0_v1.1.0.pkl"),
}
_REQUIRED_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")


class _ChumpyArray:
    """Stands in for ``chumpy.ch.Ch`` while unpickling: keeps only the array value ``x``."""

    def __setstate__(self, state):
        self.value = np.asarray(state.get("x", state.get("a")) if isinstance(state, dict) else state)


class _SafeSmplUnpickler(pickle.Unpickler):
    _ALLOWED = {
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
        ("scipy.sparse.csc", "csc_matrix"), ("scipy.sparse._csc", "csc_matrix"),
        ("scipy.sparse.csr", "csr_matrix"), ("scipy.sparse._csr", "csr_matrix"),
        ("copyreg", "_reconstructor"), ("builtins", "object"),  # protocol-0/1 pickles of the stub
        ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "dict"), ("builtins", "list"),
        ("_codecs", "encode"),  # how Python 3 pickles bytes at protocol 2
    }  # fmt: skip

    def find_class(self, module, name):
        module = {"__builtin__": "builtins", "copy_reg": "copyreg"}.get(module, module)  # Python 2 names
        if module.startswith("chumpy"):
            return _ChumpyArray
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from an SMPL file")


def _plain(value):
    if isinstance(value, _ChumpyArray):
        return value.value
    if hasattr(value, "toarray"):  # scipy.sparse
        return value.toarray()
    return value


def read_smpl_pickle(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays of an original SMPL ``.pkl`` (chumpy or not) as plain numpy, in SMPL's own frame."""
    with open(path, "rb") as f:
        try:
            raw = _SafeSmplUnpickler(f, encoding="latin1").load()
        except (pickle.UnpicklingError, EOFError, AttributeError, ValueError) as e:
            raise SmplFilesMissingError(f"{path} is not a readable SMPL model file ({e})") from e
    if not isinstance(raw, dict):
        raise SmplFilesMissingError(f"{path} is not an SMPL model file (no dictionary inside)")
    missing = [k for k in _REQUIRED_KEYS if k not in raw]
    if missing:
        raise SmplFilesMissingError(f"{path} is not an SMPL model file (missing {', '.join(missing)})")
    return {k: np.asarray(_plain(raw[k])) for k in _REQUIRED_KEYS}


def find_smpl_file(smpl_dir: str | os.PathLike | None, gender: str = "neutral") -> pathlib.Path:
    """Locate ``SMPL_<GENDER>.pkl`` in ``smpl_dir`` or ``smpl_dir/smpl`` (``$MUNET_SMPL_DIR`` if None)."""
    root = smpl_dir or os.environ.get(SMPL_DIR_ENV)
    how_to = (
        "SMPL is licensed and not shipped: register at https://smpl.is.tue.mpg.de, download the SMPL "
        "model for Python, put SMPL_NEUTRAL.pkl (or SMPL_MALE.pkl / SMPL_FEMALE.pkl) into DIR/smpl/, "
        f"and pass --smpl-dir DIR or set {SMPL_DIR_ENV}=DIR. The default body model (Anny) needs no files."
    )
    if not root:
        raise SmplFilesMissingError(f"no SMPL directory given. {how_to}")
    root = pathlib.Path(root).expanduser()
    candidates = [d / name for d in (root, root / "smpl") for name in _FILE_NAMES[gender]]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise SmplFilesMissingError(f"no SMPL {gender} model file in {root} (looked for {', '.join(_FILE_NAMES[gender])}). {how_to}")


class SmplBody(BodyModel):
    """SMPL (6,890 vertices, smpl24) in the Blender frame, feet on z=0. Shape: 10 betas.

    Built through ``smplx.SMPL`` from the converted arrays; posing adds SMPL's pose-corrective
    blendshapes to the shared world-aligned LBS (checked against smplx's own forward in the tests).
    """

    name = "smpl"
    skeleton_name = "smpl24"
    joint_names = SMPL24_JOINTS
    parents = SMPL24_PARENTS

    def __init__(self, smpl_dir: str | os.PathLike | None = None, gender: str = "neutral", num_betas: int = 10,
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        import smplx
        from smplx.utils import Struct

        path = find_smpl_file(smpl_dir, gender)
        arrays = read_smpl_pickle(path)
        self.smplx_model = smplx.SMPL(model_path=str(path.parent), data_struct=Struct(**arrays), num_betas=num_betas, dtype=dtype)
        parents = tuple(int(p) for p in self.smplx_model.parents.tolist())
        if parents[1:] != SMPL24_PARENTS[1:]:
            raise SmplFilesMissingError(f"{path}: kinematic tree is not SMPL's 24-joint tree")
        self.num_shape_params = self.smplx_model.num_betas
        convert = torch.tensor(SMPL_TO_BLENDER, dtype=dtype)
        self.register_buffer("convert", convert)
        self.register_buffer("dense_weights", self.smplx_model.lbs_weights.to(dtype))
        self.register_buffer("faces", self.smplx_model.faces_tensor.long())
        self.register_buffer("default_shape", torch.zeros(1, self.num_shape_params, dtype=dtype))
        log.info("loaded SMPL (%s) from %s", gender, path)

    def _rest_smpl_frame(self, shape: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.smplx_model
        vertices = m.v_template + torch.einsum("bl,vcl->bvc", shape, m.shapedirs)
        joints = torch.einsum("jv,bvc->bjc", m.J_regressor, vertices)
        return vertices, joints

    def rest(self, shape: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        vertices, joints = self._rest_smpl_frame(shape)
        vertices, joints = vertices @ self.convert.T, joints @ self.convert.T
        floor = vertices[..., 2].min(dim=1).values
        offset = torch.stack([torch.zeros_like(floor), torch.zeros_like(floor), -floor], -1)[:, None]
        return vertices + offset, joints + offset

    def pose_rotations(self, rest_vertices_m, rest_joints_m, rotations, translation_m=None) -> BodyOutput:
        """Shared LBS plus SMPL's pose-corrective blendshapes (computed in SMPL's frame)."""
        batch = rotations.shape[0]
        rotations_s = self.convert.T @ rotations[:, 1:] @ self.convert  # same rotations in SMPL's frame
        eye = torch.eye(3, dtype=rotations_s.dtype, device=rotations_s.device)
        pose_feature = (rotations_s - eye).reshape(batch, -1)  # (B, 207)
        offsets_s = (pose_feature @ self.smplx_model.posedirs).reshape(batch, -1, 3)
        rest_vertices_m = rest_vertices_m.expand(batch, -1, -1) + offsets_s @ self.convert.T
        return super().pose_rotations(rest_vertices_m, rest_joints_m, rotations, translation_m)
