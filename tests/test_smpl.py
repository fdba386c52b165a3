"""SMPL through smplx from a synthetic file of the real structure (no real SMPL file exists here)."""

from __future__ import annotations

import pickle

import pytest
import torch

from munet.body import load_body_model
from munet.errors import SmplFilesMissingError
from smpl_synthetic import make_synthetic_smpl


@pytest.fixture(scope="module")
def smpl_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("smpl_models")
    (root / "smpl").mkdir()
    make_synthetic_smpl(root / "smpl" / "SMPL_NEUTRAL.pkl")
    return root


def test_loads_chumpy_pickle_without_chumpy(smpl_dir):
    import sys

    assert "chumpy" not in sys.modules
    body = load_body_model("smpl", smpl_dir=str(smpl_dir))
    assert body.num_vertices == 6890 and body.num_joints == 24 and body.num_shape_params == 10
    rest_vertices, _ = body.rest(body.default_shape)
    assert abs(rest_vertices[0, :, 2].min().item()) < 1e-6, "feet on z=0"
    assert rest_vertices[0, :, 2].max() > 1.3, "SMPL's Y-up becomes Z-up"


def test_matches_smplx_forward_in_our_frame(smpl_dir):
    body = load_body_model("smpl", smpl_dir=str(smpl_dir))
    generator = torch.Generator().manual_seed(0)
    betas = torch.randn(2, 10, generator=generator) * 0.5
    pose = torch.randn(2, 24, 3, generator=generator) * 0.3
    ours = body(betas, pose).vertices_m
    convert = body.convert
    pose_smpl = pose @ convert  # axis-angle vectors back into SMPL's frame: C^T a
    reference = body.smplx_model(betas=betas, global_orient=pose_smpl[:, 0], body_pose=pose_smpl[:, 1:].reshape(2, -1))
    reference = reference.vertices @ convert.T
    rest_vertices, rest_joints = body.rest(betas)
    _, rest_joints_smpl = body._rest_smpl_frame(betas)
    shift = rest_joints[:, 0] - rest_joints_smpl[:, 0] @ convert.T  # our feet-on-floor offset
    assert torch.allclose(ours, reference + shift[:, None], atol=1e-5)


def test_missing_files_say_where_to_get_them(tmp_path, monkeypatch):
    monkeypatch.delenv("MUNET_SMPL_DIR", raising=False)
    with pytest.raises(SmplFilesMissingError, match="smpl.is.tue.mpg.de") as no_dir:
        load_body_model("smpl")
    assert no_dir.value.code == "smpl_files_missing" and "MUNET_SMPL_DIR" in str(no_dir.value)
    with pytest.raises(SmplFilesMissingError, match=str(tmp_path)):
        load_body_model("smpl", smpl_dir=str(tmp_path))


def test_hostile_pickle_is_refused_not_run(tmp_path):
    class Exploit:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    (tmp_path / "smpl").mkdir()
    with open(tmp_path / "smpl" / "SMPL_NEUTRAL.pkl", "wb") as f:
        pickle.dump({"v_template": Exploit()}, f)
    with pytest.raises(SmplFilesMissingError, match="refusing"):
        load_body_model("smpl", smpl_dir=str(tmp_path))
    assert not (tmp_path / "pwned").exists()
