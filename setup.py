"""The package layout pyproject.toml cannot express (the metadata lives there).

The distribution ``munet-blender`` installs two import packages, so it claims no generic top-level name:
- ``munet``: the model library, with the shipped network as package data ``munet/checkpoints/``
  (the repository's ``checkpoints/munet.{safetensors,json}``; the ablation checkpoints stay out);
- ``munet_backend``: the repository's ``backend/`` (the `munet` CLI, the server, the wire protocol).
``training/``, ``benchmarks/`` and ``tests/`` are not installed: a server never runs them.
"""

from setuptools import find_packages, setup

BACKEND = "munet_backend"

packages = find_packages(include=["munet", "munet.*"])
packages += [BACKEND] + [f"{BACKEND}.{name}" for name in find_packages("backend")]
packages += ["munet.checkpoints"]

setup(
    packages=packages,
    package_dir={BACKEND: "backend", "munet.checkpoints": "checkpoints"},
    package_data={"munet.checkpoints": ["munet.safetensors", "munet.json"]},
    include_package_data=False,
)
