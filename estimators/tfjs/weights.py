"""Read a TensorFlow.js graph model (``model.json`` + binary weight shards) into numpy arrays.

The format (tfjs-core ``io``, ``weights_loader`` / ``decodeWeights``): ``model.json`` holds ``modelTopology`` (a
TensorFlow GraphDef written as JSON: ``node`` = list of ``{name, op, input, attr}``) and ``weightsManifest``, a
list of groups ``{paths: [shard files], weights: [{name, shape, dtype, quantization?}]}``. The shards of a group
are concatenated in order and its weights are laid out back to back, little-endian, in manifest order; every
``Const`` node of the graph takes its value from the weight of the same name.

Quantization, exactly as TF.js decodes it:

- ``quantization.dtype`` ``uint8`` / ``uint16`` (needs ``scale`` and ``min``): ``value = q * scale + min``
  computed in double precision and stored as float32 (``int32`` weights: rounded to the nearest integer);
- ``float16`` (float32 weights only): IEEE half precision widened to float32.

Unquantized dtypes: ``float32``, ``int32``, ``bool`` (one byte per value). ``string`` and ``complex64`` weights
are refused. numpy only (no torch), so this module can be used to inspect a model cheaply.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["TfjsFormatError", "TfjsModel", "decode_weights", "load_model_json", "read_model"]

# bytes per element of each stored dtype, and the numpy little-endian dtype it is read as
_STORED = {
    "float32": np.dtype("<f4"),
    "int32": np.dtype("<i4"),
    "bool": np.dtype("u1"),
    "uint8": np.dtype("u1"),
    "uint16": np.dtype("<u2"),
    "float16": np.dtype("<f2"),
}
_OUT = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}


class TfjsFormatError(ValueError):
    """A TF.js model file (json or weight shard) is malformed; the message names the file, item and field."""


@dataclass(frozen=True)
class TfjsModel:
    """A parsed TF.js graph model.

    ``nodes``: the GraphDef nodes (dicts with ``name``, ``op``, optional ``input`` and ``attr``), in file order.
    ``weights``: weight name -> numpy array (float32 / int32 / bool) with the manifest's shape.
    ``signature``: the ``signature`` entry of model.json (``inputs`` / ``outputs`` tensor infos) or ``{}``.
    ``path``: the model.json file; ``name``: its stem (used in error messages).
    """

    path: Path
    name: str
    nodes: list[dict[str, Any]]
    weights: dict[str, np.ndarray]
    signature: dict[str, Any]
    meta: dict[str, Any]


def load_model_json(path: str | Path) -> dict[str, Any]:
    """Parse and validate the structure of a TF.js graph-model ``model.json`` (weights are not read)."""
    path = Path(path)
    if not path.is_file():
        raise TfjsFormatError(f"{path}: no such file (a TF.js model.json was expected)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TfjsFormatError(f"{path}: not a JSON file: {exc}") from exc
    if not isinstance(doc, dict):
        raise TfjsFormatError(f"{path}: top level must be an object, got {type(doc).__name__}")
    fmt = doc.get("format", "graph-model")
    if fmt != "graph-model":
        raise TfjsFormatError(f"{path}: field 'format' is {fmt!r}; only TF.js 'graph-model' files are supported")
    topo = doc.get("modelTopology")
    if not isinstance(topo, dict) or not isinstance(topo.get("node"), list):
        raise TfjsFormatError(f"{path}: field 'modelTopology.node' (the GraphDef node list) is missing")
    for i, node in enumerate(topo["node"]):
        if not isinstance(node, dict) or not isinstance(node.get("name"), str) or not isinstance(node.get("op"), str):
            raise TfjsFormatError(f"{path}: modelTopology.node[{i}] needs string fields 'name' and 'op'")
        if not isinstance(node.get("input", []), list):
            raise TfjsFormatError(f"{path}: node {node['name']!r}: field 'input' must be a list")
    lib = topo.get("library") or {}
    if lib.get("function"):
        raise TfjsFormatError(f"{path}: modelTopology.library holds functions (control flow); not supported")
    manifest = doc.get("weightsManifest")
    if not isinstance(manifest, list):
        raise TfjsFormatError(f"{path}: field 'weightsManifest' must be a list of weight groups")
    for g, group in enumerate(manifest):
        if not isinstance(group, dict) or not isinstance(group.get("paths"), list) \
                or not isinstance(group.get("weights"), list):
            raise TfjsFormatError(f"{path}: weightsManifest[{g}] needs list fields 'paths' and 'weights'")
    return doc


def _weight_spec(path: Path, g: int, spec: Any) -> tuple[str, tuple[int, ...], str, dict[str, Any] | None]:
    where = f"{path}: weightsManifest[{g}]"
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise TfjsFormatError(f"{where}: a weight entry needs a string 'name'")
    name = spec["name"]
    shape = spec.get("shape")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise TfjsFormatError(f"{where}: weight {name!r}: field 'shape' must be a list of non-negative ints")
    dtype = spec.get("dtype")
    if dtype not in _OUT:
        raise TfjsFormatError(f"{where}: weight {name!r}: field 'dtype' is {dtype!r}; "
                              f"supported: {sorted(_OUT)}")
    q = spec.get("quantization")
    if q is not None:
        if not isinstance(q, dict) or q.get("dtype") not in ("uint8", "uint16", "float16"):
            qd = q.get("dtype") if isinstance(q, dict) else q
            raise TfjsFormatError(f"{where}: weight {name!r}: field 'quantization.dtype' is {qd!r}; "
                                  "supported: uint8, uint16, float16")
        if q["dtype"] == "float16" and dtype != "float32":
            raise TfjsFormatError(f"{where}: weight {name!r}: float16 quantization needs dtype float32, "
                                  f"got {dtype!r}")
        if q["dtype"] in ("uint8", "uint16"):
            if dtype == "bool":
                raise TfjsFormatError(f"{where}: weight {name!r}: a bool weight cannot be {q['dtype']}-quantized")
            for key in ("scale", "min"):
                if not isinstance(q.get(key), (int, float)) or isinstance(q.get(key), bool):
                    raise TfjsFormatError(f"{where}: weight {name!r}: {q['dtype']} quantization needs a numeric "
                                          f"'quantization.{key}'")
    return name, tuple(shape), dtype, q


def decode_weights(path: Path, group_index: int, specs: list[Any], data: bytes) -> dict[str, np.ndarray]:
    """Decode one manifest group: ``data`` = its shards concatenated; returns name -> array (see module doc)."""
    out: dict[str, np.ndarray] = {}
    offset = 0
    for spec in specs:
        name, shape, dtype, q = _weight_spec(path, group_index, spec)
        stored = _STORED[q["dtype"] if q else dtype]
        count = int(np.prod(shape, dtype=np.int64))
        nbytes = count * stored.itemsize
        if offset + nbytes > len(data):
            raise TfjsFormatError(
                f"{path}: weightsManifest[{group_index}]: weight {name!r} (shape {list(shape)}, "
                f"{q['dtype'] if q else dtype}) needs bytes {offset}..{offset + nbytes} but the group's shards hold "
                f"only {len(data)} bytes")
        raw = np.frombuffer(data, dtype=stored, count=count, offset=offset)
        offset += nbytes
        if q is None:
            values = raw.astype(_OUT[dtype]) if dtype == "bool" else raw.astype(stored.newbyteorder("="))
        elif q["dtype"] == "float16":
            values = raw.astype(np.float32)
        else:
            # TF.js: v * scale + min in double precision, stored in a Float32Array (int32: Math.round)
            real = raw.astype(np.float64) * float(q["scale"]) + float(q["min"])
            values = np.floor(real + 0.5).astype(np.int32) if dtype == "int32" else real.astype(np.float32)
        if name in out:
            raise TfjsFormatError(f"{path}: weightsManifest[{group_index}]: weight {name!r} appears twice")
        out[name] = values.reshape(shape)  # astype copied: writable, contiguous
    if offset != len(data):
        raise TfjsFormatError(f"{path}: weightsManifest[{group_index}]: the shards hold {len(data)} bytes but the "
                              f"manifest's weights use {offset}; the .bin files do not match this model.json")
    return out


def read_model(path: str | Path) -> TfjsModel:
    """Read ``model.json`` and all its weight shards (paths relative to the json's folder)."""
    path = Path(path)
    doc = load_model_json(path)
    weights: dict[str, np.ndarray] = {}
    for g, group in enumerate(doc["weightsManifest"]):
        chunks = []
        for shard in group["paths"]:
            if not isinstance(shard, str):
                raise TfjsFormatError(f"{path}: weightsManifest[{g}].paths holds a non-string entry {shard!r}")
            shard_path = path.parent / shard
            if not shard_path.is_file():
                raise TfjsFormatError(f"{path}: weightsManifest[{g}].paths: weight shard {shard_path} not found")
            chunks.append(shard_path.read_bytes())
        group_weights = decode_weights(path, g, group["weights"], b"".join(chunks))
        for name in group_weights:
            if name in weights:
                raise TfjsFormatError(f"{path}: weightsManifest[{g}]: weight {name!r} appears in two groups")
        weights.update(group_weights)
    meta = {k: doc[k] for k in ("generatedBy", "convertedBy", "format") if k in doc}
    return TfjsModel(path=path, name=path.stem, nodes=doc["modelTopology"]["node"], weights=weights,
                     signature=doc.get("signature") or {}, meta=meta)
