"""HRNet: exact size and layout against the authors' code (reference JSONs), shapes, remaps."""
from __future__ import annotations

import json

import pytest
import torch

from association.keypoints import COCO17
from estimators import hrnet
from estimators.hrnet import HRNet, hrnet_w32, hrnet_w48
from estimators.registry import get_spec
from estimators.spec import HRNET


@pytest.fixture(autouse=True)
def _one_thread():
    # Two shared cores: intra-op threads fighting other processes make small forwards 20x slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _layout(model: torch.nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def _meta(builder, **kw) -> torch.nn.Module:
    """The network on the meta device: real module structure and shapes, no memory and no weight init."""
    with torch.device("meta"):
        return builder(**kw)


@pytest.mark.parametrize("name, builder", [("hrnet_w32", hrnet_w32), ("hrnet_w48", hrnet_w48)])
def test_size_and_layout_match_the_authors_code(reference, name, builder):
    stats = json.loads((reference / "model_stats.json").read_text())
    model = _meta(builder)
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == stats["official"][name]["params"] == stats["mmpose"][name]["params"]
    assert len(model.state_dict()) == stats["official"][name]["state_dict_entries"]
    official = json.loads((reference / "checkpoint_layouts" / f"official_{name}.json").read_text())
    ours = _layout(model)
    assert list(ours) == list(official)  # same names in the same order
    assert ours == official
    assert (model.family, model.arch, model.num_keypoints) == ("hrnet", "hrnet", 17)


@pytest.mark.parametrize("source", ["mmpose0x", "mmpose1x"])
def test_mmpose_remaps_give_our_layout(reference, source):
    layout = json.loads((reference / "checkpoint_layouts" / f"{source}_hrnet_w32.json").read_text())
    sd = {k: torch.zeros(v) for k, v in layout.items()}
    mapped = hrnet.CHECKPOINT_REMAPS[source](sd)
    assert {k: list(v.shape) for k, v in mapped.items()} == _layout(_meta(hrnet_w32))
    head = "keypoint_head" if source == "mmpose0x" else "head"
    assert mapped["final_layer.weight"] is sd[f"{head}.final_layer.weight"]
    assert mapped["stage4.2.fuse_layers.0.3.1.running_var"] is sd["backbone.stage4.2.fuse_layers.0.3.1.running_var"]
    # official files already are our layout
    official = json.loads((reference / "checkpoint_layouts" / "official_hrnet_w32.json").read_text())
    assert set(hrnet.CHECKPOINT_REMAPS["official"]({k: torch.zeros(0) for k in official})) == set(mapped)


def test_remap_refuses_colliding_keys():
    sd = {"backbone.conv1.weight": torch.zeros(1), "conv1.weight": torch.zeros(1)}
    with pytest.raises(ValueError, match="conv1.weight"):
        hrnet.CHECKPOINT_REMAPS["mmpose1x"](sd)


def test_remap_keeps_unknown_keys_for_the_strict_loader():
    sd = {"backbone.conv1.weight": torch.zeros(1), "head.something.weight": torch.zeros(1)}
    assert set(hrnet.CHECKPOINT_REMAPS["mmpose1x"](sd)) == {"conv1.weight", "head.something.weight"}


def test_forward_shapes_and_return_all():
    torch.manual_seed(0)
    model = HRNet(num_keypoints=5, width=8).eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        hm = model(x)
        allh = model(x, return_all=True)
        taps = model.forward_features(x)
    assert hm.shape == (2, 5, 16, 24)
    assert len(allh) == 1 and len(allh[0]) == 1 and torch.equal(allh[0][0], hm)
    # layer1 + stages 2/3/4; branch i of a stage is at 1/(4*2^i) with width 8*2^i; stage 4 keeps only branch 0.
    assert [len(t) for t in taps] == [1, 2, 3, 1]
    assert taps[0][0].shape == (2, 256, 16, 24)
    for group in taps[1:]:
        for i, t in enumerate(group):
            assert t.shape == (2, 8 * 2 ** i, 16 // 2 ** i, 24 // 2 ** i)


def test_full_size_forward_w32_and_its_conv_macs(reference):
    """Shapes and conv MACs of the full-size forward (meta device: the MACs follow from the shapes alone)."""
    stats = json.loads((reference / "model_stats.json").read_text())["official"]["hrnet_w32"]["256x192"]
    model = _meta(hrnet_w32).eval()
    macs = []
    hooks = [m.register_forward_hook(lambda mod, i, o: macs.append(mod.weight.numel() * o.shape[-2] * o.shape[-1]))
             for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        hm = model(torch.empty(1, 3, 256, 192, device="meta"))
    for h in hooks:
        h.remove()
    assert hm.shape == (1, 17, 64, 48)
    assert sum(macs) == stats["conv_linear_macs"]  # 7.645e9, the paper's 7.1 GFLOPs in 2^30 units


def test_batch_items_are_independent():
    torch.manual_seed(1)
    model = HRNet(num_keypoints=3, width=8).eval()
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        full = model(x)
        single = model(x[1:2])
    torch.testing.assert_close(full[1:2], single, rtol=1e-4, atol=1e-6)


def test_bad_input_size_is_a_clear_error():
    model = HRNet(num_keypoints=3, width=8)
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.randn(1, 3, 64, 48))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.randn(1, 1, 64, 64))


def test_num_keypoints_and_registry_names():
    model = _meta(hrnet_w32, num_keypoints=15)
    assert model.final_layer.out_channels == 15 and model.num_keypoints == 15
    assert set(hrnet.HRNET_VARIANTS) == {"hrnet_w32", "hrnet_w48"}
    for name in hrnet.HRNET_VARIANTS:  # what travels with the name
        spec = get_spec(name)
        assert spec.family is HRNET and spec.layout is COCO17 and spec.input_size == (192, 256)
        assert dict(spec.checkpoint_remaps) == hrnet.CHECKPOINT_REMAPS and spec.builder.__module__ == hrnet.__name__
    assert set(hrnet.CHECKPOINT_REMAPS) == {"official", "mmpose0x", "mmpose1x"}
