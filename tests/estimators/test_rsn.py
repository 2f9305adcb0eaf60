"""RSN: exact parameter counts and state-dict layouts against the authors' code and MMPose (the
reference layouts and statistics measured on the released code), strict loading of every layout through
CHECKPOINT_REMAPS, the exact conv-bias fold of
the official layout, the Residual Steps Block and PRM computations, and output shapes at 256x192 and
384x288 (meta device for the shape-only checks; real forwards on small inputs / the smallest model).
"""
from __future__ import annotations

import functools
import json
import math
import re

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from estimators import registry, rsn
from estimators.mspn import PRM
from estimators.spec import MSPN as MSPN_FAMILY

# builder -> reference name used by checkpoint_layouts/<source>_<ref>.json and model_stats.json
LAYOUT = {
    "rsn_18": "rsn18", "rsn_50": "rsn50", "rsn50_2x": "2xrsn50", "rsn50_3x": "3xrsn50", "rsn50_4x": "4xrsn50",
    "rsn18_4x": "4xrsn18", "rsn_18_prm": "rsn18_prm", "rsn_50_prm": "rsn50_prm",
    "rsn50_2x_prm": "2xrsn50_prm", "rsn50_4x_prm": "4xrsn50_prm",
}
STAGES = {"rsn_18": 1, "rsn_50": 1, "rsn50_2x": 2, "rsn50_3x": 3, "rsn50_4x": 4, "rsn18_4x": 4,
          "rsn_18_prm": 1, "rsn_50_prm": 1, "rsn50_2x_prm": 2, "rsn50_4x_prm": 4}
SOURCES = ("official", "mmpose0x", "mmpose1x")


@pytest.fixture(autouse=True)
def _one_thread():
    # Two shared cores: intra-op threads fighting other processes make small forwards much slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@functools.cache
def meta_model(name: str) -> nn.Module:
    with torch.device("meta"):
        return registry.get_spec(name).builder().eval()


def load_layout(reference, source: str, model: str) -> dict[str, list[int]] | None:
    path = reference / "checkpoint_layouts" / f"{source}_{model}.json"
    return json.loads(path.read_text()) if path.exists() else None


def random_official_state_dict(layout: dict[str, list[int]], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random float32 weights with exactly the layout's keys and shapes; BN statistics kept plausible."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in layout.items():
        if key.endswith("num_batches_tracked"):
            sd[key] = torch.tensor(0)
        elif key.endswith("running_var") or (key.endswith(".weight") and len(shape) == 1):
            sd[key] = 0.5 + torch.rand(shape, generator=g)
        elif len(shape) == 4:
            sd[key] = torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:]))
        else:  # conv biases, BN biases, running means
            sd[key] = 0.1 * torch.randn(shape, generator=g)
    return sd


def ours_to_official(key: str) -> str:
    """Test-side inverse of the official RSN rename, written independently of the module."""
    key = key.replace("backbone.top.top.0.", "top.conv.")
    m = re.match(r"^head\.predict_layers\.(\d+)\.conv_layers\.(\d)\.(.*)$", key)
    if m:
        k = int(m.group(1))
        return f"stage{k // 4}.upsample.up{k % 4 + 1}.res_conv{int(m.group(2)) + 1}.{m.group(3)}"
    key = re.sub(r"^backbone\.multi_stage_rsn\.(\d+)\.", r"stage\1.", key)
    key = key.replace(".conv_bn3.", ".conv_bn_relu3.")
    for ours, theirs in (("in_skip", "u_skip"), ("out_skip1", "skip1"), ("out_skip2", "skip2")):
        key = key.replace(f".{ours}.", f".{theirs}.")
    return key


def official_layout_of(model: nn.Module) -> dict[str, list[int]]:
    layout = {}
    for key, value in model.state_dict().items():
        layout[ours_to_official(key)] = list(value.shape)
        if key.endswith(".conv.weight"):
            layout[ours_to_official(key)[: -len("weight")] + "bias"] = [value.shape[0]]
    return layout


def test_registered_names_and_attributes():
    for name in LAYOUT:
        assert name in registry.list_models() and registry.get_spec(name).family.name == "mspn"
        model = meta_model(name)
        assert (model.family, model.arch, model.num_keypoints) == ("mspn", "rsn", 17)
    assert rsn.CHECKPOINT_REMAPS.keys() == set(SOURCES)
    for name in LAYOUT:  # what travels with the name
        spec = registry.get_spec(name)
        assert spec.family is MSPN_FAMILY and spec.input_size == (192, 256) and spec.layout.name == "coco17"
        assert dict(spec.checkpoint_remaps) == rsn.CHECKPOINT_REMAPS


@pytest.mark.parametrize("name", LAYOUT)
def test_parameter_count(reference, name):
    stats = json.loads((reference / "model_stats.json").read_text())
    ours = sum(p.numel() for p in meta_model(name).parameters())
    official = load_layout(reference, "official", LAYOUT[name])
    if LAYOUT[name] in stats["mmpose"]:
        assert ours == stats["mmpose"][LAYOUT[name]]["params"]
    if official is not None:  # official count minus the conv biases we fold away
        biases = sum(math.prod(s) for k, s in official.items() if k.endswith(".conv.bias"))
        assert ours == stats["official"][LAYOUT[name]]["params"] - biases
    assert LAYOUT[name] in stats["mmpose"] or official is not None


@pytest.mark.parametrize("name", [n for n in LAYOUT if n != "rsn18_4x"])  # no MMPose 4xRSN-18
def test_state_dict_equals_mmpose1x_layout(reference, name):
    layout = load_layout(reference, "mmpose1x", LAYOUT[name])
    ours = {k: list(v.shape) for k, v in meta_model(name).state_dict().items()}
    assert ours == layout
    assert list(ours) == list(layout)  # same order too


LOADS = [(name, source) for name in LAYOUT for source in SOURCES
         if source != "official" or name in ("rsn_18", "rsn18_4x")]
LOADS = [(n, s) for n, s in LOADS if not (n == "rsn18_4x" and s != "official")]


@pytest.mark.parametrize("name,source", LOADS)
def test_every_layout_loads_strictly_after_remap(reference, name, source):
    layout = load_layout(reference, source, LAYOUT[name])
    assert layout is not None, f"no {source} layout for {name}"
    remapped = rsn.CHECKPOINT_REMAPS[source]({k: torch.empty(s, device="meta") for k, s in layout.items()})
    n_bias = sum(k.endswith(".conv.bias") for k in layout) if source == "official" else 0
    assert len(remapped) == len(layout) - n_bias  # every key consumed, only the folded biases dropped
    result = meta_model(name).load_state_dict(remapped, strict=True)
    assert not result.missing_keys and not result.unexpected_keys


@pytest.mark.parametrize("name", ["rsn_18", "rsn18_4x"])
def test_official_layout_is_our_layout_renamed(reference, name):
    assert official_layout_of(meta_model(name)) == load_layout(reference, "official", LAYOUT[name])


@pytest.mark.filterwarnings("ignore:TF32 acceleration")  # emitted by mkldnn.flags on CPU-only builds
@torch.backends.mkldnn.flags(enabled=False)  # oneDNN set-up costs more than tiny convs
def test_official_network_equals_folded_network():
    """Random official-style weights for a small 2-stage RSN: folded biases == conv biases put back."""
    def small():
        torch.manual_seed(0)
        return rsn.RSN(num_stages=2, num_blocks=(1, 1, 1, 1), unit_channels=32).eval()

    official = random_official_state_dict(official_layout_of(small()))
    ours = small()
    ours.load_state_dict(rsn.CHECKPOINT_REMAPS["official"](official), strict=True)
    rename = functools.partial(rsn.official_key_to_ours, stages_name="multi_stage_rsn",
                               block_rename=rsn._rsn_block_rename)
    unfolded = {rename(k): v for k, v in official.items() if not k.endswith(".conv.bias")}
    with_bias = small()
    with_bias.load_state_dict(unfolded, strict=True)
    n = 0
    for key, bias in official.items():
        if key.endswith(".conv.bias"):
            conv = with_bias.get_submodule(rename(key[: -len(".bias")] + ".weight").rsplit(".", 1)[0])
            assert isinstance(conv, nn.Conv2d) and conv.bias is None
            conv.bias = nn.Parameter(bias.clone())
            n += 1
    assert n == sum(isinstance(m, nn.Conv2d) for m in ours.modules())

    x = torch.randn(2, 3, 64, 48, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got, want, final = ours(x, return_all=True), with_bias(x, return_all=True), ours(x)
    assert [[tuple(t.shape) for t in s] for s in got] == [[(2, 17, 16, 12)] * 4] * 2
    torch.testing.assert_close(final, got[-1][-1], rtol=0, atol=0)
    scale = max(w.abs().max().item() for stage in want for w in stage)
    assert scale > 0
    for g_stage, w_stage in zip(got, want):
        for g, w in zip(g_stage, w_stage):
            torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5 * scale)
    ours.load_state_dict(unfolded, strict=True)
    with torch.no_grad():
        assert not torch.allclose(ours(x), want[-1][-1], rtol=1e-3, atol=1e-3 * scale)


def test_residual_steps_block_matches_the_unrolled_equations():
    torch.manual_seed(0)
    block = rsn.RSB(64, 128, stride=2, downsample=rsn.ConvBN(64, 128, 1, stride=2, relu=False)).eval()
    for m in block.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    assert block.branch_channels == 26
    assert sum(isinstance(m, nn.Conv2d) for m in block.modules()) == 1 + 10 + 1 + 1
    x = torch.randn(2, 64, 16, 12)
    c = {f"{i}{j}": getattr(block, f"conv_bn_relu2_{i}_{j}") for i in range(1, 5) for j in range(1, i + 1)}
    with torch.no_grad():
        s = torch.split(block.conv_bn_relu1(x), 26, dim=1)
        y11 = c["11"](s[0])
        y21 = c["21"](s[1] + y11)
        y22 = c["22"](y21)
        y31 = c["31"](s[2] + y21)
        y32 = c["32"](y31 + y22)
        y33 = c["33"](y32)
        y41 = c["41"](s[3] + y31)
        y42 = c["42"](y41 + y32)
        y43 = c["43"](y42 + y33)
        y44 = c["44"](y43)
        expected = F.relu(block.conv_bn3(torch.cat([y11, y22, y33, y44], 1)) + block.downsample(x))
        got = block(x)
    assert got.shape == (2, 128, 8, 6)
    torch.testing.assert_close(got, expected)


def test_prm_reweights_heatmaps_channel_and_spatially():
    torch.manual_seed(0)
    prm = PRM(17).eval()
    for m in prm.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.normal_(0, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    x = torch.randn(2, 17, 16, 12)
    with torch.no_grad():
        f = prm.conv_bn_relu_prm_1(x)
        alpha = prm.middle_path(f.mean(dim=(2, 3)))
        beta = prm.bottom_path(f)
        out = prm(x)
    assert alpha.shape == (2, 17) and beta.shape == (2, 1, 16, 12)
    assert ((alpha >= 0.5) & (alpha <= 1)).all() and ((beta >= 0.5) & (beta <= 1)).all()  # sigmoid(ReLU(.))
    torch.testing.assert_close(out, f * (1 + alpha[:, :, None, None] * beta))


def test_real_forward_rsn18_prm_256x192():
    torch.manual_seed(0)
    model = registry.get_spec("rsn_18_prm").builder().eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 256, 192), return_all=True)
    assert len(out) == 1 and [tuple(t.shape) for t in out[0]] == [(1, 17, 64, 48)] * 4
    assert all(torch.isfinite(t).all() for t in out[0]) and out[0][-1].std() > 0


def _shape_cases(stages: dict[str, int]) -> list:
    """Every variant at 256x192; 384x288 too for the 1- and 2-stage ones (a stage maps any input size the same
    way, so more stages add no new size arithmetic). Meta forwards of 3-4 stages are slow-marked."""
    return [pytest.param(n, size, marks=[pytest.mark.slow] if k >= 3 else [], id=f"{n}-{size[0]}x{size[1]}")
            for n, k in stages.items() for size in ((256, 192), (384, 288)) if size == (256, 192) or k <= 2]


@pytest.mark.parametrize("name, size", _shape_cases(STAGES))
def test_output_shapes_meta(name, size):
    h, w = size
    out = meta_model(name)(torch.empty(1, 3, h, w, device="meta"), return_all=True)
    assert len(out) == STAGES[name]
    for stage in out:
        assert [tuple(t.shape) for t in stage] == [(1, 17, h // 4, w // 4)] * 4


def test_official_remap_renames_the_last_block_conv():
    sd = {"stage0.downsample.layer1.0.conv_bn_relu3.conv.weight": torch.zeros(64, 104, 1, 1),
          "stage0.downsample.layer1.0.conv_bn_relu3.bn.running_mean": torch.zeros(64),
          "stage0.downsample.layer1.0.conv_bn_relu3.conv.bias": torch.ones(64)}
    out = rsn.CHECKPOINT_REMAPS["official"](sd)
    prefix = "backbone.multi_stage_rsn.0.downsample.layer1.0.conv_bn3"
    assert set(out) == {f"{prefix}.conv.weight", f"{prefix}.bn.running_mean"}
    assert torch.equal(out[f"{prefix}.bn.running_mean"], -torch.ones(64))
    assert torch.equal(sd["stage0.downsample.layer1.0.conv_bn_relu3.bn.running_mean"], torch.zeros(64))
