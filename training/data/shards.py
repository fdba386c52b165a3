"""Datasets on disk: safetensors shards plus a manifest, written and read without pickle.

Layout of a dataset directory::

    manifest.json              format, config, seed, sample range, per-shard sha256, provenance
    shard-00000.safetensors    samples [0, shard_size), every field stacked along axis 0
    shard-00001.safetensors    ...

Storage encodings (decoded transparently by ``ShardReader``; the decoded sample is exactly the
format of ``training/data/sample.py``):

* ``mask`` as uint8 (value x 255, rounded); ``gt_mask`` / ``gt_body_mask`` bit-packed along rows;
  booleans as uint8.
* with ``vertex_dtype: float16``: ``body_vertices_m`` relative to the root joint and
  ``clothed_vertices_m`` relative to the body, both float16 (quantisation < 1 mm and < 0.3 mm).

safetensors reads lazily (``safe_open``): a random-access sample costs only its own bytes.
"""

from __future__ import annotations

import hashlib
import json
import pathlib

import numpy as np

FORMAT = "munet-synthetic-v1"
MANIFEST = "manifest.json"
PACKED = ("gt_mask", "gt_body_mask")


def shard_name(k: int) -> str:
    return f"shard-{k:05d}.safetensors"


def encode(sample: dict[str, np.ndarray], vertex_dtype: str = "float16") -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Samples (stacked) -> arrays to store and {field: encoding}."""
    arrays: dict[str, np.ndarray] = {}
    encoding: dict[str, str] = {}
    for name, value in sample.items():
        value = np.asarray(value)
        if name == "mask":
            arrays[name] = np.round(np.clip(value, 0.0, 1.0) * 255.0).astype(np.uint8)
            encoding[name] = "unit_uint8"
        elif name in PACKED:
            arrays[name] = np.packbits(value.astype(bool), axis=-1)
            encoding[name] = f"packbits:{value.shape[-1]}"
        elif value.dtype == np.bool_:
            arrays[name] = value.astype(np.uint8)
            encoding[name] = "bool"
        elif name == "body_vertices_m" and vertex_dtype == "float16":
            root = np.asarray(sample["body_joints_m"])[:, :1]
            arrays[name] = (value - root).astype(np.float16)
            encoding[name] = "float16_minus_root"
        elif name == "clothed_vertices_m" and vertex_dtype == "float16":
            arrays[name] = (value - np.asarray(sample["body_vertices_m"])).astype(np.float16)
            encoding[name] = "float16_minus_body"
        else:
            arrays[name] = np.ascontiguousarray(value)
            encoding[name] = "raw"
    return arrays, encoding


def decode(arrays: dict[str, np.ndarray], encoding: dict[str, str]) -> dict[str, np.ndarray]:
    """Inverse of ``encode`` for stacked arrays (any number of samples along axis 0)."""
    out: dict[str, np.ndarray] = {}
    for name, value in arrays.items():
        kind = encoding.get(name, "raw")
        if kind == "unit_uint8":
            out[name] = value.astype(np.float32) / 255.0
        elif kind.startswith("packbits:"):
            out[name] = np.unpackbits(value, axis=-1, count=int(kind.split(":")[1])).astype(bool)
        elif kind == "bool":
            out[name] = value.astype(bool)
        elif kind in ("float16_minus_root", "float16_minus_body"):
            out[name] = value  # resolved below, once the references are decoded
        else:
            out[name] = value
    if encoding.get("body_vertices_m") == "float16_minus_root":
        out["body_vertices_m"] = out["body_vertices_m"].astype(np.float32) + out["body_joints_m"][..., :1, :]
    if encoding.get("clothed_vertices_m") == "float16_minus_body":
        out["clothed_vertices_m"] = out["clothed_vertices_m"].astype(np.float32) + out["body_vertices_m"]
    return out


def write_shard(path: pathlib.Path, sample: dict[str, np.ndarray], vertex_dtype: str) -> str:
    """Write stacked samples; returns the file's sha256. Written to a temporary name, then renamed."""
    from safetensors.numpy import save_file

    arrays, encoding = encode(sample, vertex_dtype)
    tmp = path.with_suffix(".tmp")
    # one metadata entry: safetensors keeps metadata in a hash map whose order (hence the file's bytes)
    # varies between calls when there are several keys
    header = json.dumps({"format": FORMAT, "encoding": encoding}, sort_keys=True)
    save_file(arrays, str(tmp), metadata={"munet": header})
    digest = file_sha256(tmp)
    tmp.replace(path)
    return digest


def file_sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ShardReader:
    """Lazy reader of one shard: ``len``, ``[i]`` -> one decoded sample, ``all()`` -> every sample."""

    def __init__(self, path: str | pathlib.Path):
        from safetensors import safe_open

        self.path = pathlib.Path(path)
        self._file = safe_open(str(self.path), framework="np")
        metadata = json.loads((self._file.metadata() or {}).get("munet", "{}"))
        if metadata.get("format") != FORMAT:
            raise ValueError(f"{self.path} is not a {FORMAT} shard (format {metadata.get('format')!r})")
        self.encoding = metadata["encoding"]
        self.keys = tuple(self._file.keys())
        self._length = self._file.get_slice(self.keys[0]).get_shape()[0]

    def __len__(self) -> int:
        return self._length

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        if not 0 <= index < self._length:
            raise IndexError(f"sample {index} out of range for {self.path} ({self._length} samples)")
        arrays = {k: self._file.get_slice(k)[index : index + 1] for k in self.keys}
        return {k: v[0] for k, v in decode(arrays, self.encoding).items()}

    def all(self) -> dict[str, np.ndarray]:
        return decode({k: self._file.get_tensor(k) for k in self.keys}, self.encoding)


def read_manifest(root: str | pathlib.Path) -> dict:
    path = pathlib.Path(root) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"no {MANIFEST} in {root}: generate the dataset with `python -m training.data.generate`")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: unknown dataset format {manifest.get('format')!r}")
    return manifest


def write_manifest(root: pathlib.Path, manifest: dict) -> None:
    tmp = root / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    tmp.replace(root / MANIFEST)
