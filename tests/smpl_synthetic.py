"""A synthetic SMPL model file with the real file's structure (no real SMPL data exists here).

Real SMPL pickles (Python 2 era) hold ``chumpy.ch.Ch`` objects for ``v_template``, ``shapedirs`` and
``posedirs``, a ``scipy.sparse.csc_matrix`` ``J_regressor``, numpy ``weights``, ``kintree_table`` and
``f``. We recreate that: a fake ``chumpy.ch.Ch`` class is registered only while pickling, so the file
references ``chumpy.ch.Ch`` exactly as the real ones do.
"""

from __future__ import annotations

import pickle
import sys
import types

import numpy as np
import scipy.sparse

from munet.body.skeleton import SMPL24_PARENTS

NUM_VERTICES = 6890


def _fake_chumpy_class():
    module = types.ModuleType("chumpy.ch")

    class Ch:
        def __init__(self, x):
            self.x = np.asarray(x)
            self._dirty_vars = set()  # chumpy objects carry bookkeeping besides x

    Ch.__module__ = "chumpy.ch"
    Ch.__qualname__ = "Ch"
    module.Ch = Ch
    return module, Ch


def make_synthetic_smpl(path, seed: int = 0) -> dict[str, np.ndarray]:
    """Write a structurally faithful SMPL pickle to ``path``; returns the plain arrays written.

    The body: 24 joints at plausible SMPL rest positions (Y up, metres), 6,890 vertices scattered
    around the bones, each skinned to its nearest joint's bone, random faces.
    """
    rng = np.random.default_rng(seed)
    joints = np.array([
        [0.0, 0.9, 0.0], [0.07, 0.82, 0.0], [-0.07, 0.82, 0.0], [0.0, 1.0, 0.0], [0.1, 0.45, 0.0],
        [-0.1, 0.45, 0.0], [0.0, 1.13, 0.0], [0.1, 0.07, -0.02], [-0.1, 0.07, -0.02], [0.0, 1.19, 0.0],
        [0.12, 0.02, 0.1], [-0.12, 0.02, 0.1], [0.0, 1.42, 0.0], [0.08, 1.34, 0.0], [-0.08, 1.34, 0.0],
        [0.0, 1.5, 0.02], [0.18, 1.36, 0.0], [-0.18, 1.36, 0.0], [0.44, 1.34, 0.0], [-0.44, 1.34, 0.0],
        [0.7, 1.34, 0.0], [-0.7, 1.34, 0.0], [0.78, 1.34, 0.0], [-0.78, 1.34, 0.0],
    ])  # fmt: skip
    owner = rng.integers(0, 24, NUM_VERTICES)
    v_template = joints[owner] + rng.normal(0, 0.03, (NUM_VERTICES, 3))
    weights = np.zeros((NUM_VERTICES, 24))
    weights[np.arange(NUM_VERTICES), owner] = 0.7
    weights[np.arange(NUM_VERTICES), np.array(SMPL24_PARENTS)[owner].clip(0)] += 0.3
    regressor = np.zeros((24, NUM_VERTICES))
    for j in range(24):
        members = np.flatnonzero(owner == j)
        regressor[j, members] = 1.0 / len(members)
    # the regressor must give back the joints: move each joint's cloud so its mean is the joint
    for j in range(24):
        members = owner == j
        v_template[members] += joints[j] - v_template[members].mean(0)
    arrays = {
        "v_template": v_template,
        "shapedirs": rng.normal(0, 0.005, (NUM_VERTICES, 3, 10)),
        "posedirs": rng.normal(0, 0.001, (NUM_VERTICES, 3, 207)),
        "J_regressor": regressor,
        "weights": weights,
        "kintree_table": np.array([[4294967295] + list(SMPL24_PARENTS[1:]), list(range(24))], dtype=np.int64),
        "f": rng.integers(0, NUM_VERTICES, (13776, 3)).astype(np.uint32),
    }
    module, Ch = _fake_chumpy_class()
    package = types.ModuleType("chumpy")
    package.ch = module
    saved = {k: sys.modules.get(k) for k in ("chumpy", "chumpy.ch")}
    sys.modules.update({"chumpy": package, "chumpy.ch": module})
    try:
        payload = {
            "v_template": Ch(arrays["v_template"]),
            "shapedirs": Ch(arrays["shapedirs"]),
            "posedirs": Ch(arrays["posedirs"]),
            "J_regressor": scipy.sparse.csc_matrix(arrays["J_regressor"]),
            "J_regressor_prior": scipy.sparse.csc_matrix(arrays["J_regressor"]),
            "weights": arrays["weights"],
            "weights_prior": arrays["weights"],
            "kintree_table": arrays["kintree_table"],
            "f": arrays["f"],
            "J": joints,
            "bs_style": "lbs",
            "bs_type": "lrotmin",
        }
        with open(path, "wb") as f:
            pickle.dump(payload, f, protocol=2)
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v
    return arrays
