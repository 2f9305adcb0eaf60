"""Multi-Stage HRNet: size derived from HRNet's, shapes, cross-stage aggregation, init from an HRNet file."""
from __future__ import annotations

import math

import pytest
import torch

from estimators import ms_hrnet
from estimators.checkpoints import CheckpointError, load_checkpoint, load_state_dict_file, save_state_dict
from estimators.hrnet import HRNet, hrnet_w32, hrnet_w48
from estimators.ms_hrnet import MultiStageHRNet, init_from_hrnet, ms_hrnet_w32, ms_hrnet_w48
from estimators.registry import get_spec
from estimators.spec import HRNET


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _n(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _randomise(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Non-trivial weights and BN statistics (the authors' init makes every output ~0)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if t.dim() > 1:
                t.copy_(torch.randn(t.shape, generator=g) / math.sqrt(t[0].numel()))
            elif name.endswith("running_var") or name.endswith(".weight"):
                t.copy_(0.5 + torch.rand(t.shape, generator=g))
            else:
                t.copy_(0.1 * torch.randn(t.shape, generator=g))
    return model


def _expected_params(hrnet: HRNet) -> int:
    """Stage 1 = the HRNet; stage 2 = the HRNet minus its stem, with layer1.0's 1x1 conv and shortcut taking W
    input channels instead of 64; the aggregation is plain addition (no parameters)."""
    stem = _n(hrnet.conv1) + _n(hrnet.bn1) + _n(hrnet.conv2) + _n(hrnet.bn2)
    first = hrnet.layer1[0]
    w = hrnet.width
    refine = (_n(hrnet) - stem - first.conv1.weight.numel() - first.downsample[0].weight.numel()
              + first.conv1.out_channels * w + first.downsample[0].out_channels * w)
    return _n(hrnet) + refine


def _meta(builder):
    """The network on the meta device: real structure and shapes, no memory and no weight init."""
    with torch.device("meta"):
        return builder()


@pytest.mark.parametrize("builder, hrnet_builder", [(ms_hrnet_w32, hrnet_w32), (ms_hrnet_w48, hrnet_w48)])
def test_parameter_count_follows_from_hrnet(builder, hrnet_builder):
    model = _meta(builder)
    assert _n(model) == _expected_params(_meta(hrnet_builder))
    assert (model.family, model.arch, model.num_keypoints) == ("hrnet", "ms_hrnet", 17)
    # stage 1 is exactly an HRNet (same state-dict layout under "stages.0.")
    ref = {k: v.shape for k, v in _meta(hrnet_builder).state_dict().items()}
    first = {k[len("stages.0."):]: v.shape for k, v in model.state_dict().items() if k.startswith("stages.0.")}
    assert first == ref


def test_forward_shapes():
    torch.manual_seed(0)
    model = MultiStageHRNet(num_keypoints=4, width=8).eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        hm = model(x)
        allh = model(x, return_all=True)
    assert hm.shape == (2, 4, 16, 24)
    assert [len(s) for s in allh] == [1, 1]
    assert allh[0][0].shape == hm.shape and torch.equal(allh[1][0], hm)
    assert not torch.equal(allh[0][0], allh[1][0])


def test_cross_stage_aggregation_adds_stage1_outputs_into_stage2():
    model = _randomise(MultiStageHRNet(num_keypoints=4, width=8), seed=3).eval()
    first, refine = model.stages
    seen: dict[str, object] = {}
    hooks = [
        first.stage3.register_forward_hook(lambda m, i, o: seen.__setitem__("s3_first", o)),
        refine.stage3.register_forward_hook(lambda m, i, o: seen.__setitem__("s3_refine", o)),
        refine.stage4.register_forward_pre_hook(lambda m, i: seen.__setitem__("s4_refine_in", i[0])),
        refine.layer1.register_forward_pre_hook(lambda m, i: seen.__setitem__("l1_refine_in", i[0])),
        first.stage4.register_forward_hook(lambda m, i, o: seen.__setitem__("feat_first", o[0])),
    ]
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    for h in hooks:
        h.remove()
    # stage 2 starts from stage 1's final highest-resolution features
    assert torch.equal(seen["l1_refine_in"], seen["feat_first"])
    # stage 4 of the refinement gets (refine stage-3 output + stage-1 stage-3 output), branch by branch
    # (transition3 keeps the first three branches as they are)
    for i in range(3):
        torch.testing.assert_close(seen["s4_refine_in"][i], seen["s3_refine"][i] + seen["s3_first"][i])


def test_init_from_a_saved_hrnet_file_reproduces_stage1(tmp_path):
    # a narrow HRNet (the same code as hrnet_w32; the registered sizes are checked on the meta device above)
    hrnet = _randomise(HRNet(num_keypoints=17, width=8), seed=1).eval()
    path = save_state_dict(hrnet, tmp_path / "hrnet_w8.pth")
    model = MultiStageHRNet(num_keypoints=17, width=8).eval()
    report = init_from_hrnet(model, load_state_dict_file(path), source="official")
    path.unlink()
    assert report.stage1_loaded == len(hrnet.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = hrnet(x)
        got = model(x, return_all=True)[0][0]
    assert torch.equal(got, expected)
    loaded = model.stages[0].state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in hrnet.state_dict().items())


def test_init_refine_stage_copies_what_fits():
    hrnet = _randomise(HRNet(num_keypoints=4, width=8), seed=2)
    model = MultiStageHRNet(num_keypoints=4, width=8)
    report = init_from_hrnet(model, hrnet.state_dict(), refine_stage=True)
    assert report.stage2_kept == ["layer1.0.conv1.weight", "layer1.0.downsample.0.weight"]
    refine, source = model.stages[1].state_dict(), hrnet.state_dict()
    stem = [k for k in source if k.split(".")[0] in ("conv1", "bn1", "conv2", "bn2")]
    assert len(stem) == 12
    assert sorted(report.stage2_copied) == sorted(set(source) - set(stem) - set(report.stage2_kept))
    assert all(torch.equal(refine[k], source[k]) for k in report.stage2_copied)


def test_init_from_hrnet_mmpose_source():
    hrnet = _randomise(HRNet(num_keypoints=4, width=8), seed=4)
    sd = {("head." + k if k.startswith("final_layer") else "backbone." + k): v for k, v in hrnet.state_dict().items()}
    model = MultiStageHRNet(num_keypoints=4, width=8)
    init_from_hrnet(model, sd, source="mmpose1x")
    assert torch.equal(model.stages[0].final_layer.weight, hrnet.final_layer.weight)


def test_init_from_hrnet_reports_every_problem_together():
    sd = dict(HRNet(num_keypoints=4, width=8).state_dict())
    sd.pop("conv1.weight")
    sd["extra.weight"] = torch.zeros(1)
    sd["final_layer.weight"] = torch.zeros(5, 8, 1, 1)
    model = MultiStageHRNet(num_keypoints=4, width=8)
    with pytest.raises(CheckpointError) as err:
        init_from_hrnet(model, sd, origin="w8.pth")
    msg = str(err.value)
    assert "w8.pth" in msg and "conv1.weight" in msg and "extra.weight" in msg and "final_layer.weight" in msg
    sd = dict(HRNet(num_keypoints=4, width=8).state_dict())
    sd["bn1.running_mean"] = torch.full_like(sd["bn1.running_mean"], float("nan"))
    with pytest.raises(CheckpointError, match="bn1.running_mean"):
        init_from_hrnet(model, sd)


def test_native_and_official_round_trip(tmp_path):
    def small():  # narrow and shallow, every kind of module kept
        return MultiStageHRNet(num_keypoints=4, width=8, num_modules=(1, 1, 1), num_blocks=1)

    model = _randomise(small(), seed=5).eval()
    path = save_state_dict(model, tmp_path / "ms.pth")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = model(x)
    for source in ("native", "official"):
        other = load_checkpoint(small().eval(), path, source)
        with torch.no_grad():
            assert torch.equal(other(x), expected)
    with pytest.raises(CheckpointError, match="init_from_hrnet"):
        load_checkpoint(small(), path, "mmpose1x")
    path.unlink()
    assert set(ms_hrnet.CHECKPOINT_REMAPS) == {"official", "mmpose0x", "mmpose1x"}
    for name in ("ms_hrnet_w32", "ms_hrnet_w48"):  # what travels with the name
        spec = get_spec(name)
        assert spec.family is HRNET and spec.input_size == (192, 256)
        assert dict(spec.checkpoint_remaps) == ms_hrnet.CHECKPOINT_REMAPS
