"""MSPN: exact parameter counts and state-dict layouts against the authors' code and MMPose (the
reference layouts and statistics measured on the released code), strict loading of every layout through
CHECKPOINT_REMAPS, the exact conv-bias fold of
the official layout, and output shapes at 256x192 and 384x288.

Shape-only checks of the big variants run on the meta device (shapes without arithmetic); real forwards are
kept to the single-stage model and to small inputs so the file stays fast on a shared 2-core CPU.
"""
from __future__ import annotations

import functools
import json
import math
import re

import pytest
import torch
import torch.nn as nn

from estimators import mspn, registry
from estimators.spec import MSPN as MSPN_FAMILY

BUILDERS = {"mspn_1stg": mspn.mspn_1stg, "mspn_2stg": mspn.mspn_2stg,
            "mspn_3stg": mspn.mspn_3stg, "mspn_4stg": mspn.mspn_4stg}
LAYOUT = {name: name for name in BUILDERS}  # reference layout/stat name of each builder
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
        return BUILDERS[name]().eval()


def load_layout(reference, source: str, model: str) -> dict[str, list[int]] | None:
    path = reference / "checkpoint_layouts" / f"{source}_{model}.json"
    return json.loads(path.read_text()) if path.exists() else None


def meta_state_dict(layout: dict[str, list[int]]) -> dict[str, torch.Tensor]:
    return {k: torch.empty(shape, device="meta") for k, shape in layout.items()}


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


def test_registered_names_and_attributes():
    for name in BUILDERS:
        assert name in registry.list_models() and registry.get_spec(name).family.name == "mspn"
        model = meta_model(name)
        assert (model.family, model.arch, model.num_keypoints) == ("mspn", "mspn", 17)
    assert mspn.CHECKPOINT_REMAPS.keys() == set(SOURCES)
    for name in BUILDERS:  # what travels with the name
        spec = registry.get_spec(name)
        assert spec.family is MSPN_FAMILY and spec.input_size == (192, 256) and spec.layout.name == "coco17"
        assert dict(spec.checkpoint_remaps) == mspn.CHECKPOINT_REMAPS


@pytest.mark.parametrize("name", BUILDERS)
def test_parameter_count_equals_mmpose(reference, name):
    stats = json.loads((reference / "model_stats.json").read_text())
    ours = sum(p.numel() for p in meta_model(name).parameters())
    assert ours == stats["mmpose"][LAYOUT[name]]["params"]
    # the official count differs exactly by the conv biases we fold away
    official = load_layout(reference, "official", LAYOUT[name])
    biases = sum(math.prod(s) for k, s in official.items() if k.endswith(".conv.bias"))
    assert ours + biases == stats["official"][LAYOUT[name]]["params"]


@pytest.mark.parametrize("name", BUILDERS)
def test_state_dict_equals_mmpose1x_layout(reference, name):
    layout = load_layout(reference, "mmpose1x", LAYOUT[name])
    ours = {k: list(v.shape) for k, v in meta_model(name).state_dict().items()}
    assert ours == layout
    assert list(ours) == list(layout)  # same order too


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("name", BUILDERS)
def test_every_layout_loads_strictly_after_remap(reference, name, source):
    layout = load_layout(reference, source, LAYOUT[name])
    assert layout is not None, f"no {source} layout for {name}"
    remapped = mspn.CHECKPOINT_REMAPS[source](meta_state_dict(layout))
    n_bias = sum(k.endswith(".conv.bias") for k in layout) if source == "official" else 0
    assert len(remapped) == len(layout) - n_bias  # every key consumed, only the folded biases dropped
    result = meta_model(name).load_state_dict(remapped, strict=True)
    assert not result.missing_keys and not result.unexpected_keys


def test_conv_bias_fold_is_exact_for_one_conv_bn_pair():
    torch.manual_seed(0)
    conv = nn.Conv2d(5, 7, 3, padding=1, bias=True).double()
    bn = nn.BatchNorm2d(7).double().eval()
    bn.running_mean.normal_()
    bn.running_var.uniform_(0.5, 2.0)
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.normal_()
    x = torch.randn(2, 5, 9, 11, dtype=torch.float64)
    expected = bn(conv(x))
    official = {"p.conv.weight": conv.weight.data, "p.conv.bias": conv.bias.data,
                **{f"p.bn.{k}": v for k, v in bn.state_dict().items()}}
    folded = mspn.fold_official_conv_biases(official)
    assert "p.conv.bias" not in folded and "p.conv.bias" in official  # input untouched
    ours = mspn.ConvBN(5, 7, 3, padding=1, relu=False).double().eval()
    ours.load_state_dict({k[2:]: v for k, v in folded.items()}, strict=True)
    torch.testing.assert_close(ours(x), expected, rtol=1e-12, atol=1e-12)


def ours_to_official(key: str) -> str:
    """Test-side inverse of the official rename (MSPN block names), written independently of the module."""
    key = key.replace("backbone.top.top.0.", "top.conv.")
    m = re.match(r"^head\.predict_layers\.(\d+)\.conv_layers\.(\d)\.(.*)$", key)
    if m:
        k = int(m.group(1))
        return f"stage{k // 4}.upsample.up{k % 4 + 1}.res_conv{int(m.group(2)) + 1}.{m.group(3)}"
    key = re.sub(r"^backbone\.multi_stage_mspn\.(\d+)\.", r"stage\1.", key)
    key = re.sub(r"\.(conv|bn)(\d)\.", r".conv_bn_relu\2.\1.", key)
    for ours, theirs in (("in_skip", "u_skip"), ("out_skip1", "skip1"), ("out_skip2", "skip2")):
        key = key.replace(f".{ours}.", f".{theirs}.")
    return key


def official_layout_of(model: nn.Module) -> dict[str, list[int]]:
    """The official keys/shapes our model corresponds to: renamed keys plus one bias per conv."""
    layout = {}
    for key, value in model.state_dict().items():
        layout[ours_to_official(key)] = list(value.shape)
        if key.endswith("conv.weight") or re.search(r"\.conv\d\.weight$", key):
            layout[ours_to_official(key)[: -len("weight")] + "bias"] = [value.shape[0]]
    return layout


@pytest.mark.parametrize("name", BUILDERS)
def test_official_layout_is_our_layout_renamed(reference, name):
    assert official_layout_of(meta_model(name)) == load_layout(reference, "official", LAYOUT[name])


@pytest.mark.filterwarnings("ignore:TF32 acceleration")  # emitted by mkldnn.flags on CPU-only builds
@torch.backends.mkldnn.flags(enabled=False)  # oneDNN set-up costs more than tiny convs
def test_official_network_equals_folded_network():
    """Random official-style weights for a small 2-stage MSPN (same code paths as the released sizes):
    our net with the biases folded == our net with the official conv biases put back on every conv and the
    unfolded BN statistics (the official computation), for every output of every stage."""
    def small():
        torch.manual_seed(0)
        return mspn.MSPN(num_stages=2, num_blocks=(1, 1, 1, 1), block="basic", unit_channels=32).eval()

    official = random_official_state_dict(official_layout_of(small()))
    ours = small()
    ours.load_state_dict(mspn.CHECKPOINT_REMAPS["official"](official), strict=True)

    rename = functools.partial(mspn.official_key_to_ours, stages_name="multi_stage_mspn",
                               block_rename=mspn._mspn_block_rename)
    with_bias = small()
    with_bias.load_state_dict({rename(k): v for k, v in official.items() if not k.endswith(".conv.bias")},
                              strict=True)
    n = 0
    for key, bias in official.items():
        if key.endswith(".conv.bias"):
            conv = with_bias.get_submodule(rename(key[: -len(".bias")] + ".weight").rsplit(".", 1)[0])
            assert isinstance(conv, nn.Conv2d) and conv.bias is None
            conv.bias = nn.Parameter(bias.clone())
            n += 1
    assert n == sum(isinstance(m, nn.Conv2d) for m in ours.modules())  # every conv had a bias

    x = torch.randn(2, 3, 64, 48, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got, want = ours(x, return_all=True), with_bias(x, return_all=True)
        final = ours(x)
    assert [[tuple(t.shape) for t in s] for s in got] == [[(2, 17, 16, 12)] * 4] * 2
    torch.testing.assert_close(final, got[-1][-1], rtol=0, atol=0)  # final == last stage, finest unit
    scale = max(w.abs().max().item() for stage in want for w in stage)
    assert scale > 0
    for g_stage, w_stage in zip(got, want):
        for g, w in zip(g_stage, w_stage):
            torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5 * scale)
    # the fold matters: without it the outputs differ
    ours.load_state_dict({rename(k): v for k, v in official.items() if not k.endswith(".conv.bias")},
                         strict=True)
    with torch.no_grad():
        assert not torch.allclose(ours(x), want[-1][-1], rtol=1e-3, atol=1e-3 * scale)


def test_official_remap_rejects_foreign_keys():
    with pytest.raises(ValueError, match="not part of"):
        mspn.CHECKPOINT_REMAPS["official"]({"stage0.something.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="no BatchNorm"):
        mspn.CHECKPOINT_REMAPS["official"]({"top.conv.conv.bias": torch.zeros(64)})


def test_mmpose_remaps_rename_the_head_prefix():
    sd = {"backbone.top.top.0.conv.weight": torch.zeros(1), "keypoint_head.predict_layers.0.x": torch.ones(1)}
    for source in ("mmpose0x", "mmpose1x"):  # the 1.x model zoo's MSPN files still use keypoint_head.
        out = mspn.CHECKPOINT_REMAPS[source](sd)
        assert set(out) == {"backbone.top.top.0.conv.weight", "head.predict_layers.0.x"}


def test_real_forward_single_stage_256x192():
    torch.manual_seed(0)
    model = mspn.mspn_1stg().eval()
    x = torch.randn(1, 3, 256, 192)
    with torch.no_grad():
        everything = model(x, return_all=True)
    assert len(everything) == 1 and len(everything[0]) == 4
    assert all(h.shape == (1, 17, 64, 48) and h.dtype == torch.float32 for h in everything[0])
    final = everything[-1][-1]
    assert torch.isfinite(final).all() and final.std() > 0


def _shape_cases(stages: dict[str, int]) -> list:
    """Every variant at 256x192; 384x288 too for the 1- and 2-stage ones (a stage maps any input size the same
    way, so more stages add no new size arithmetic). Meta forwards of 3-4 stages are slow-marked."""
    return [pytest.param(n, size, marks=[pytest.mark.slow] if k >= 3 else [], id=f"{n}-{size[0]}x{size[1]}")
            for n, k in stages.items() for size in ((256, 192), (384, 288)) if size == (256, 192) or k <= 2]


@pytest.mark.parametrize("name, size", _shape_cases({n: int(n[5]) for n in BUILDERS}))
def test_output_shapes_meta(name, size):
    h, w = size
    model = meta_model(name)
    stages = int(name[5])
    out = model(torch.empty(1, 3, h, w, device="meta"), return_all=True)
    assert len(out) == stages
    for stage in out:
        assert [tuple(t.shape) for t in stage] == [(1, 17, h // 4, w // 4)] * 4


def test_resnet18_option_and_keypoint_count():
    with torch.device("meta"):
        model = mspn.MSPN(num_keypoints=14, num_stages=2, num_blocks=(2, 2, 2, 2), block="basic").eval()
    assert model.backbone.multi_stage_mspn[0].upsample.up1.in_skip.conv.in_channels == 512
    out = model(torch.empty(1, 3, 256, 192, device="meta"), return_all=True)
    assert [[tuple(t.shape) for t in s] for s in out] == [[(1, 14, 64, 48)] * 4] * 2


def test_bad_arguments_raise_value_errors():
    with pytest.raises(ValueError, match="block"):
        mspn.MSPN(block="resnext")
    with pytest.raises(ValueError, match="num_stages"):
        mspn.MSPN(num_stages=0)
    with pytest.raises(ValueError, match=r"\(B,3,H,W\)"):
        meta_model("mspn_1stg")(torch.empty(3, 256, 192, device="meta"))
