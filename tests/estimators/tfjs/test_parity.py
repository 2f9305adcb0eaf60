"""Exactness against the runtime the models were made for: @tensorflow/tfjs (pure JavaScript CPU backend) in Node
runs the same model.json on the same input, and every requested output of our torch.fx conversion must agree
within 1e-4 relative to the output's scale (max |ours - tfjs| <= 1e-4 * max |tfjs|). Both the raw heads and the
graph's own batch-1 outputs (ArgMax / GatherNd / TopKV2 decoding) are compared; the batch-free cut of each model
is checked to give the same heads for a crop whether it runs alone or inside a batch.

Skipped with the reason when npm / node are absent (fixtures in conftest.py). The tfjs results are cached, so
only the first run pays for the (slow) JavaScript execution.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from estimators.tfjs.graph import load_graph_model
from estimators.tfjs.known import KNOWN_GRAPHS, load_heads

REL_TOL = 1e-4


def _image(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """A structured test image in [0, 255] (smooth blobs + noise), float64, the given NHWC/NCHW shape."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, size=(shape[0], 9, 9, 3))
    h, w = (shape[1], shape[2]) if shape[-1] == 3 else (shape[2], shape[3])
    yy = np.linspace(0, 8, h)[:, None]
    xx = np.linspace(0, 8, w)[None, :]
    y0, x0 = np.floor(yy).astype(int).clip(0, 7), np.floor(xx).astype(int).clip(0, 7)
    fy, fx = (yy - y0)[..., None], (xx - x0)[..., None]
    img = (small[:, y0, x0] * (1 - fy) * (1 - fx) + small[:, y0 + 1, x0] * fy * (1 - fx)
           + small[:, y0, x0 + 1] * (1 - fy) * fx + small[:, y0 + 1, x0 + 1] * fy * fx)
    img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255)
    return img if shape[-1] == 3 else img.transpose(0, 3, 1, 2)


def _rel(ours: np.ndarray, ref: np.ndarray) -> float:
    scale = max(float(np.abs(ref).max()), 1e-6) if ref.size else 1.0
    return float(np.abs(ours.astype(np.float64) - ref.astype(np.float64)).max()) / scale if ref.size else 0.0


def _label(tensor: str) -> str:
    parts = tensor.split("/")
    return parts[-2] if parts[-1] == "BiasAdd" and len(parts) > 1 else parts[-1]


def _check(name: str, outputs: list[str], ours, refs) -> dict[str, float]:
    figures = {}
    for out, o, r in zip(outputs, ours, refs):
        o = o.detach().numpy()
        assert o.shape == r.shape, f"{name}: output {out}: shape {o.shape} vs tfjs {r.shape}"
        figures[out] = _rel(o, r)
    print(f"\n{name}: max |torch - tfjs| / max |tfjs| per output: "
          + ", ".join(f"{_label(k)}={v:.1e}" for k, v in figures.items()))
    bad = {k: v for k, v in figures.items() if not v <= REL_TOL}
    assert not bad, f"{name}: outputs beyond {REL_TOL} relative: {bad}"
    return figures


def _run(model: str, tfjs_models, tfjs_reference, x: np.ndarray, input_name: str,
         input_shapes: dict | None = None) -> None:
    """The whole graph (raw heads + the graph's own outputs) against tfjs on ``x``; then the batch-free cut of
    :data:`KNOWN_GRAPHS` on a batch of ``x`` and another image: crop 0 must give tfjs's heads."""
    spec = KNOWN_GRAPHS[model]
    heads = list(spec["outputs"])
    outputs = heads + list(spec["full_outputs"] or [])
    path = tfjs_models / f"{model}.json"
    refs = tfjs_reference(path, {input_name: x}, outputs)
    gm = load_graph_model(path, outputs=outputs, input_shapes=input_shapes)
    with torch.no_grad():
        ours = gm(torch.from_numpy(x))
    _check(model, outputs, ours, refs)

    cut = load_heads(path, input_shapes=input_shapes)
    assert cut.batch_free, cut.batch_breaks
    others = _image((1, *x.shape[1:]), seed=7)
    others = others.round() if x.dtype == np.int32 else others / 255.0  # float inputs here are in [0, 1]
    batch = np.concatenate([x, others.astype(x.dtype)])
    if spec["inputs"]:  # the cut starts after the Cast to float
        batch = batch.astype(np.float32)
    with torch.no_grad():
        ours = cut(torch.from_numpy(batch))
    _check(f"{model} (batch of 2, crop 0)", heads, [o[:1] for o in ours], refs[:len(heads)])


@pytest.mark.parametrize("model,size", [("movenet-thunder", 256), ("movenet-lightning", 192)])
def test_movenet_singlepose_matches_tfjs(model, size, tfjs_models, tfjs_reference):
    x = _image((1, size, size, 3), seed=size).round().astype(np.int32)
    _run(model, tfjs_models, tfjs_reference, x, "input")


@pytest.mark.slow
def test_movenet_multipose_matches_tfjs(tfjs_models, tfjs_reference):
    x = _image((1, 256, 320, 3), seed=3).round().astype(np.int32)
    _run("movenet-multipose", tfjs_models, tfjs_reference, x, "input", {"input": (1, 256, 320, 3)})


@pytest.mark.slow
def test_centernet_matches_tfjs(tfjs_models, tfjs_reference):
    x = (_image((1, 512, 512, 3), seed=4) / 255.0).astype(np.float32)
    _run("centernet", tfjs_models, tfjs_reference, x, "tower_0/images")


@pytest.mark.slow
def test_nanodet_matches_tfjs(tfjs_models, tfjs_reference):
    x = (_image((1, 3, 416, 416), seed=5) / 255.0).astype(np.float32)
    _run("nanodet", tfjs_models, tfjs_reference, x, "input_1")
