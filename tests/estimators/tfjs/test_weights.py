"""The TF.js weights manifest reader: every dtype and quantization on synthetic files, clear errors, a real file."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from estimators.tfjs.weights import TfjsFormatError, load_model_json, read_model


def _write(tmp_path: Path, groups: list[tuple[list[dict], list[bytes]]], name: str = "model",
           nodes: list | None = None, **extra) -> Path:
    """groups: (weight specs, shard contents); writes name.json + shards named name.gK.sJ.bin."""
    manifest = []
    for g, (specs, shards) in enumerate(groups):
        paths = []
        for s, data in enumerate(shards):
            p = f"{name}.g{g}.s{s}.bin"
            (tmp_path / p).write_bytes(data)
            paths.append(p)
        manifest.append({"paths": paths, "weights": specs})
    doc = {"format": "graph-model", "modelTopology": {"node": nodes or []}, "weightsManifest": manifest, **extra}
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(doc))
    return path


def test_all_dtypes_and_quantizations(tmp_path):
    rng = np.random.default_rng(0)
    f32 = rng.normal(size=(2, 3)).astype("<f4")
    i32 = np.array([-7, 0, 2**31 - 1], dtype="<i4")
    flags = np.array([1, 0, 1, 1], dtype="u1")
    f16 = rng.normal(size=(5,)).astype("<f2")
    q8 = np.array([0, 1, 128, 255], dtype="u1")
    q16 = np.array([0, 1000, 65535], dtype="<u2")
    qi = np.array([0, 3, 255], dtype="u1")
    specs0 = [
        {"name": "f32", "shape": [2, 3], "dtype": "float32"},
        {"name": "i32", "shape": [3], "dtype": "int32"},
        {"name": "flags", "shape": [2, 2], "dtype": "bool"},
        {"name": "f16", "shape": [5], "dtype": "float32", "quantization": {"dtype": "float16"}},
    ]
    data0 = f32.tobytes() + i32.tobytes() + flags.tobytes() + f16.tobytes()
    specs1 = [
        {"name": "q8", "shape": [4], "dtype": "float32", "quantization": {"dtype": "uint8", "scale": 0.1, "min": -1}},
        {"name": "q16", "shape": [1, 3], "dtype": "float32",
         "quantization": {"dtype": "uint16", "scale": 1e-3, "min": 0.5}},
        {"name": "qi", "shape": [3], "dtype": "int32", "quantization": {"dtype": "uint8", "scale": 0.5, "min": 1}},
        {"name": "scalar", "shape": [], "dtype": "float32"},
    ]
    data1 = q8.tobytes() + q16.tobytes() + qi.tobytes() + np.float32(2.5).tobytes()
    # group 1 split over two shards in the middle of a weight
    path = _write(tmp_path, [(specs0, [data0]), (specs1, [data1[:5], data1[5:]])])
    w = read_model(path).weights

    np.testing.assert_array_equal(w["f32"], f32)
    assert w["f32"].dtype == np.float32
    np.testing.assert_array_equal(w["i32"], i32)
    assert w["i32"].dtype == np.int32
    np.testing.assert_array_equal(w["flags"], [[True, False], [True, True]])
    np.testing.assert_array_equal(w["f16"], f16.astype(np.float32))
    # TF.js: q * scale + min in double precision, stored as float32; int32 weights rounded (Math.round)
    np.testing.assert_array_equal(w["q8"], np.array([-1.0, -0.9, 11.8, 24.5]).astype(np.float32))
    np.testing.assert_array_equal(w["q16"], np.array([[0.5, 1.5, 66.035]]).astype(np.float32))
    np.testing.assert_array_equal(w["qi"], np.array([1, 3, 129], dtype=np.int32))  # 2.5 -> 3 (half up)
    assert w["scalar"].shape == () and float(w["scalar"]) == 2.5


@pytest.mark.parametrize("spec,data,needle", [
    ({"name": "w", "shape": [4], "dtype": "float32"}, b"\0" * 8, "needs bytes 0..16"),
    ({"name": "w", "shape": [1], "dtype": "float32"}, b"\0" * 8, "use 4"),
    ({"name": "w", "shape": [1], "dtype": "complex64"}, b"\0" * 8, "field 'dtype'"),
    ({"name": "w", "shape": [1], "dtype": "float32", "quantization": {"dtype": "uint8", "min": 0}}, b"\0",
     "quantization.scale"),
    ({"name": "w", "shape": [1], "dtype": "int32", "quantization": {"dtype": "float16"}}, b"\0\0",
     "float16 quantization needs dtype float32"),
    ({"name": "w", "shape": [1], "dtype": "float32", "quantization": {"dtype": "int4"}}, b"\0",
     "quantization.dtype"),
    ({"name": "w", "shape": [-1], "dtype": "float32"}, b"", "field 'shape'"),
])
def test_bad_weight_entries_name_file_weight_and_field(tmp_path, spec, data, needle):
    path = _write(tmp_path, [([spec], [data])])
    with pytest.raises(TfjsFormatError) as info:
        read_model(path)
    msg = str(info.value)
    assert str(path) in msg and needle in msg
    if needle != "use 4":  # a size mismatch of the whole group names no single weight
        assert "weight 'w'" in msg


def test_missing_shard_and_bad_json(tmp_path):
    path = _write(tmp_path, [([{"name": "w", "shape": [1], "dtype": "float32"}], [b"\0" * 4])])
    (tmp_path / "model.g0.s0.bin").unlink()
    with pytest.raises(TfjsFormatError, match=r"weight shard .*model\.g0\.s0\.bin not found"):
        read_model(path)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(TfjsFormatError, match="not a JSON file"):
        load_model_json(bad)
    layers = _write(tmp_path, [], name="layers", format="layers-model")
    with pytest.raises(TfjsFormatError, match="'format' is 'layers-model'"):
        load_model_json(layers)
    with pytest.raises(TfjsFormatError, match="no such file"):
        load_model_json(tmp_path / "absent.json")


def test_real_model_weights_match_its_graph(tfjs_models):
    """movenet-thunder: every Const node has a weight whose shape is the node's declared tensorShape."""
    model = read_model(tfjs_models / "movenet-thunder.json")
    consts = [n for n in model.nodes if n["op"] == "Const"]
    assert len(consts) == len(model.weights) == 180
    for node in consts:
        dims = node["attr"]["value"]["tensor"].get("tensorShape", {}).get("dim", [])
        assert model.weights[node["name"]].shape == tuple(int(d["size"]) for d in dims), node["name"]
    conv = model.weights["StatefulPartitionedCall/center_net_mobile_net_v2fpn_feature_extractor/model_1/model/"
                         "Conv1/Conv2D_weights"]
    assert conv.shape == (3, 3, 3, 56) and conv.dtype == np.float32 and np.isfinite(conv).all()
    assert 0.01 < float(np.abs(conv).mean()) < 10  # float16-decoded real weights, not garbage
