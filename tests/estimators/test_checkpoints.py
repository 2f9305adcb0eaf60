"""Checkpoint loading: every reference layout, wrapped like the real files, fits its model strictly after the
remap (keys and shapes, on the meta device); one value-level round trip through real files per family; safety
(weights_only + numpy allow-list), error reporting, format guessing, the keypoint layout a file declares."""
from __future__ import annotations

import functools
import json
import math
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from association.keypoints import COCO17, POSETRACK18
from estimators.checkpoints import (
    FORMATS,
    CheckpointError,
    checkpoint_layout,
    load_checkpoint,
    load_state_dict_file,
    load_weights,
    read_checkpoint_file,
    remap_state_dict,
    save_state_dict,
    suggest_source,
    unwrap_state_dict,
)
from estimators.hrnet import HRNet

_REPO = Path(__file__).resolve().parents[2]
LAYOUTS = Path(os.environ.get("POSETRACK_SHARED", _REPO.parent / "shared")) / "reference" / "checkpoint_layouts"
LAYOUT_FILES = sorted(p.name for p in LAYOUTS.glob("*.json")) if LAYOUTS.is_dir() else []

SOURCES = ("official", "mmpose0x", "mmpose1x")
_MODEL_NAMES = {"rsn18": "rsn_18", "rsn50": "rsn_50", "2xrsn50": "rsn50_2x", "3xrsn50": "rsn50_3x",
                "4xrsn50": "rsn50_4x", "4xrsn18": "rsn18_4x"}
# one value-level round trip through real files per family: HRNet (MMPose 1.x file with numpy dataset_meta)
# and MSPN/RSN (the official layout: renames plus the conv-bias fold)
ROUND_TRIP = ("mmpose1x_hrnet_w32.json", "official_rsn18.json")


@pytest.fixture(autouse=True)
def _one_thread():
    # Two shared cores: intra-op threads fighting other processes make small forwards 20x slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def split_layout_name(filename: str) -> tuple[str, str]:
    """``mmpose1x_2xrsn50_prm.json`` -> ("mmpose1x", "rsn50_2x_prm")."""
    stem = filename[: -len(".json")]
    source, model = stem.split("_", 1)
    assert source in SOURCES, filename
    prm = model.endswith("_prm")
    base = model[: -len("_prm")] if prm else model
    return source, _MODEL_NAMES.get(base, base) + ("_prm" if prm else "")


def build(name: str) -> torch.nn.Module:
    """The registered network ``name`` (random weights)."""
    from estimators.factory import build_model

    return build_model(name)


@functools.cache
def meta_model(name: str) -> torch.nn.Module:
    """The registered network on the meta device: structure and shapes only (no memory, no init); one per
    name, shared by the three source layouts of that name."""
    from estimators.factory import build_model

    with torch.device("meta"):
        return build_model(name)


@pytest.fixture(scope="module")
def noise() -> torch.Tensor:
    """A pool of N(0, 1) values; slices of it at random offsets fill the big state dicts quickly."""
    return torch.randn(1 << 22, generator=torch.Generator().manual_seed(0))


def random_state_dict(layout: dict[str, list[int]], seed: int, noise: torch.Tensor) -> dict[str, torch.Tensor]:
    """Exactly the layout's keys and shapes: weights ~ N(0, 1/fan_in), BN weight/running_var in [0.5, 1.5),
    biases/means ~ N(0, 0.1), integer 0-d ``num_batches_tracked``."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in layout.items():
        n = math.prod(shape)
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(int(torch.randint(0, 10_000, (), generator=g)), dtype=torch.int64)
            continue
        if n > noise.numel() // 2:
            values = torch.randn(n, generator=g)
        else:
            start = int(torch.randint(0, noise.numel() - n + 1, (), generator=g))
            values = noise[start:start + n].clone()
        if len(shape) > 1:
            values /= math.sqrt(math.prod(shape[1:]))
        elif key.endswith(("running_var", ".weight")):
            values = 0.5 + torch.rand(n, generator=g)
        else:
            values *= 0.1
        out[key] = values.reshape(shape)
    return out


def dataset_meta() -> dict:
    """What MMPose 1.x puts in ``meta['dataset_meta']`` (numpy arrays and scalars among plain values)."""
    return {
        "dataset_name": "coco",
        "num_keypoints": 17,
        "sigmas": np.array([0.026, 0.025, 0.025, 0.035, 0.035] + [0.079] * 12, dtype=np.float32),
        "dataset_keypoint_weights": np.ones(17, dtype=np.float32),
        "keypoint_colors": np.array([[51, 153, 255]] * 17, dtype=np.uint8),
        "skeleton_link_colors": np.zeros((19, 3), dtype=np.uint8),
        "flip_indices": [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15],
        "keypoint_id2name": dict(enumerate(COCO17.names)),
        "area_thr": np.float64(0.5),
        "ids": np.arange(17, dtype=np.int64),
    }


def wrap(source: str, model_name: str, sd: dict[str, torch.Tensor]) -> dict:
    """The file content the source's released checkpoints have (reference README, "How ... wrapped")."""
    if source == "official" and model_name.startswith("hrnet"):
        return sd  # final_state.pth / model_best.pth: raw state dict
    if source == "official":  # MSPN / RSN
        return {"model": sd, "optimizer": {"state": {}, "param_groups": [{"lr": 5e-4, "params": [0, 1]}]},
                "scheduler": {"last_epoch": 96000}, "iteration": 96000}
    if source == "mmpose0x":
        return {"meta": {"mmcv_version": "1.7.0", "time": "Fri Jul 1 2022", "epoch": 210, "iter": 15000},
                "state_dict": sd}
    return {"meta": {"mmengine_version": "0.10.3", "epoch": 210, "iter": 15000, "dataset_meta": dataset_meta()},
            "state_dict": sd}


@pytest.mark.skipif(not LAYOUT_FILES, reason=f"reference layouts not found at {LAYOUTS}")
@pytest.mark.parametrize("filename", LAYOUT_FILES)
def test_reference_layout_fits_its_model_strictly_after_the_remap(filename):
    """Keys and shapes of every released layout, wrapped as the source wraps its files: the format is
    recognised, the wrapper unwrapped, and the remapped dict has exactly the model's keys and shapes (what the
    strict load checks). Meta tensors: no values, no memory; values are checked by the round trips below."""
    source, name = split_layout_name(filename)
    layout = json.loads((LAYOUTS / filename).read_text())
    model = meta_model(name)
    sd = {k: torch.empty(shape, device="meta") for k, shape in layout.items()}
    unwrapped = unwrap_state_dict(wrap(source, name, sd), filename)
    assert suggest_source(unwrapped) == source
    assert list(unwrapped) == list(sd)
    mapped = remap_state_dict(model, unwrapped, source, filename)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in mapped.items()} == ours
    if source == "official" and not name.startswith("hrnet"):  # MSPN/RSN: only the folded conv biases go
        assert len(layout) - len(mapped) == sum(k.endswith(".conv.bias") for k in layout) > 0
    else:
        assert len(mapped) == len(layout)


@pytest.mark.skipif(not LAYOUT_FILES, reason=f"reference layouts not found at {LAYOUTS}")
@pytest.mark.parametrize("filename", ROUND_TRIP)
def test_reference_layout_round_trip_through_real_files(filename, tmp_path, noise):
    """Values: a random state dict of the released layout, saved as the source saves it, loads strictly (format
    guessed); renamed tensors arrive unchanged; our own saved file loads back to the same outputs. The
    files are deleted as soon as they are read."""
    source, name = split_layout_name(filename)
    layout = json.loads((LAYOUTS / filename).read_text())
    model = build(name)
    sd = random_state_dict(layout, seed=len(filename), noise=noise)
    path = tmp_path / f"{filename[:-5]}.pth"
    torch.save(wrap(source, name, sd), path)
    fmt, declared = load_weights(model, path)
    path.unlink()
    assert fmt == source
    assert declared is (COCO17 if source == "mmpose1x" else None)
    ours = model.state_dict()
    if source == "official" and not name.startswith("hrnet"):
        folded = [k for k in sd if k.endswith(".conv.bias")]
        assert len(ours) == len(sd) - len(folded)
        # the fold: running_mean(ours) = running_mean(file) - conv bias(file)
        key = "stage0.downsample.layer1.0.conv_bn_relu1"
        assert torch.equal(ours["backbone.multi_stage_rsn.0.downsample.layer1.0.conv_bn_relu1.bn.running_mean"],
                           sd[f"{key}.bn.running_mean"] - sd[f"{key}.conv.bias"])
    else:  # pure renames: every file tensor arrives unchanged somewhere
        checks = sorted((tuple(v.shape), float(v.sum())) for v in sd.values())
        assert sorted((tuple(v.shape), float(v.sum())) for v in ours.values()) == checks
    if name.startswith("hrnet"):
        assert torch.equal(ours["final_layer.weight"], sd["head.final_layer.weight"])
        assert torch.equal(ours["stage4.2.branches.3.3.bn2.running_var"],
                           sd["backbone.stage4.2.branches.3.3.bn2.running_var"])
    del sd
    mine = save_state_dict(model, tmp_path / "ours.pth")
    again = load_checkpoint(build(name), mine, "native")
    mine.unlink()
    x = torch.randn(1, 3, 64, 64) if name.startswith("hrnet") else torch.randn(1, 3, 64, 48)
    model.eval()
    again.eval()
    with torch.no_grad():
        a, b = model(x), again(x)
    assert a.shape[-2:] == (x.shape[2] // 4, x.shape[3] // 4)
    assert torch.isfinite(a).all() and torch.equal(a, b)


def test_layout_file_names_map_to_registered_builders():
    names = {split_layout_name(f)[1] for f in LAYOUT_FILES}
    assert {"hrnet_w32", "rsn50_2x_prm", "rsn18_4x", "mspn_4stg"} <= names or not LAYOUT_FILES
    assert split_layout_name("mmpose1x_2xrsn50_prm.json") == ("mmpose1x", "rsn50_2x_prm")
    assert split_layout_name("official_rsn18.json") == ("official", "rsn_18")
    assert set(ROUND_TRIP) <= set(LAYOUT_FILES) or not LAYOUT_FILES


# ------------------------------------------------------------------------------------ small-model checks
def small_hrnet(seed: int = 0, num_keypoints: int = 3) -> HRNet:
    """A narrow, shallow HRNet (all four stages and every kind of module, about 400 state-dict entries)."""
    torch.manual_seed(seed)
    return HRNet(num_keypoints=num_keypoints, width=8, num_modules=(1, 2, 1), num_blocks=1, layer1_blocks=1)


def test_hrnet_checkpoint_pth_wrapper_with_module_prefix(tmp_path):
    src = small_hrnet(1)
    sd = {"module." + k: v for k, v in src.state_dict().items()}
    path = tmp_path / "checkpoint.pth"
    torch.save({"epoch": 140, "model": "pose_hrnet", "state_dict": sd, "best_state_dict": dict(src.state_dict()),
                "perf": 0.74, "optimizer": {"state": {}, "param_groups": []}}, path)
    assert set(load_state_dict_file(path)) == set(src.state_dict())
    dst = load_checkpoint(small_hrnet(2), path, "official")
    loaded = dst.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in src.state_dict().items())


def _to_numpy1_spelling(src: Path, dst: Path) -> None:
    """Rewrite the pickle as numpy 1.x writes it (``numpy.core.multiarray``), as in real MMPose 1.x files."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith("data.pkl"):
                assert b"numpy._core.multiarray\n_reconstruct" in data or b"numpy.core.multiarray\n_reconstruct" in data
                data = data.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
            zout.writestr(info, data)


def test_mmpose1x_file_with_numpy_dataset_meta_loads(tmp_path):
    src = small_hrnet(3)
    sd = {("head." + k if k.startswith("final_layer") else "backbone." + k): v for k, v in src.state_dict().items()}
    path = tmp_path / "td-hm_hrnet.pth"
    torch.save(wrap("mmpose1x", "hrnet_w32", sd), path)
    old = tmp_path / "td-hm_hrnet_numpy1.pth"
    _to_numpy1_spelling(path, old)
    for p in (path, old):
        meta = read_checkpoint_file(p)["meta"]["dataset_meta"]
        expected = dataset_meta()
        assert meta["sigmas"].dtype == np.float32 and np.array_equal(meta["sigmas"], expected["sigmas"])
        assert meta["keypoint_colors"].dtype == np.uint8
        assert np.array_equal(meta["keypoint_colors"], expected["keypoint_colors"])
        assert meta["area_thr"] == 0.5 and np.array_equal(meta["ids"], np.arange(17))
        dst = load_checkpoint(small_hrnet(4), p, "mmpose1x")
        assert torch.equal(dst.final_layer.weight, src.final_layer.weight)


class _Exploit:
    """Pickles to a call of os.system: a weights loader must never execute it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("zip_format", [True, False])
def test_pickle_that_runs_code_is_refused(tmp_path, zip_format):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": small_hrnet().state_dict(), "meta": _Exploit(marker)}, path,
               _use_new_zipfile_serialization=zip_format)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="refused") as err:
        load_checkpoint(small_hrnet(), path, "official")
    assert str(path) in str(err.value) and "system" in str(err.value)
    assert not marker.exists()


def test_nan_and_inf_weights_are_refused_naming_the_key(tmp_path):
    for bad in (float("nan"), float("inf")):
        sd = dict(small_hrnet().state_dict())
        sd["stage3.1.branches.2.0.conv1.weight"] = sd["stage3.1.branches.2.0.conv1.weight"].clone()
        sd["stage3.1.branches.2.0.conv1.weight"][0, 0, 0, 0] = bad
        path = tmp_path / "bad.pth"
        torch.save(sd, path)
        with pytest.raises(CheckpointError, match=r"stage3\.1\.branches\.2\.0\.conv1\.weight") as err:
            load_checkpoint(small_hrnet(), path, "official")
        assert str(path) in str(err.value)


def test_missing_unexpected_and_wrong_shape_are_reported_together(tmp_path):
    sd = dict(small_hrnet().state_dict())
    del sd["transition2.2.0.1.running_var"]
    sd["final_layer.weight"] = torch.zeros(4, 8, 1, 1)
    sd["stage2.0.extra.weight"] = torch.zeros(3)
    path = tmp_path / "mixed.pth"
    torch.save({"meta": {}, "state_dict": {"backbone." + k: v for k, v in sd.items()}}, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(small_hrnet(), path, "mmpose0x")
    msg = str(err.value)
    assert str(path) in msg and "shape mismatch" in msg and "final_layer.weight" in msg
    assert "missing" in msg and "transition2.2.0.1.running_var" in msg
    assert "unexpected" in msg and "stage2.0.extra.weight" in msg
    torch.save({"meta": {}, "state_dict": sd}, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(small_hrnet(), path, "official")
    msg = str(err.value)
    assert all(s in msg for s in ("transition2.2.0.1.running_var", "stage2.0.extra.weight",
                                  "final_layer.weight: file (4, 8, 1, 1) vs model (3, 8, 1, 1)"))


def test_unknown_source_lists_the_valid_ones(tmp_path):
    path = save_state_dict(small_hrnet(), tmp_path / "ours.pth")
    with pytest.raises(CheckpointError, match="mmpose0x, mmpose1x, native, official"):
        load_checkpoint(small_hrnet(), path, "mmpose2x")


def test_bad_files_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.pth"):
        load_state_dict_file(tmp_path / "nothing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="junk.pth"):
        load_state_dict_file(junk)
    tensor_file = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), tensor_file)
    with pytest.raises(CheckpointError, match="tensor.pth.*Tensor"):
        load_state_dict_file(tensor_file)
    nested = tmp_path / "nested.pth"
    torch.save({"state_dict": {"a": torch.zeros(1), "b": [1, 2]}}, nested)
    with pytest.raises(CheckpointError, match=r"nested.pth.*'b'.*list"):
        load_state_dict_file(nested)
    other = tmp_path / "other.pth"
    torch.save({"weights": {"a": torch.zeros(1)}, "epoch": 3}, other)
    with pytest.raises(CheckpointError, match="other.pth.*'epoch', 'weights'"):
        load_state_dict_file(other)


def test_suggest_source():
    t = torch.zeros(1)
    assert suggest_source({"backbone.conv1.weight": t, "keypoint_head.final_layer.weight": t}) == "mmpose0x"
    assert suggest_source({"backbone.conv1.weight": t, "head.final_layer.weight": t}) == "mmpose1x"
    assert suggest_source({"conv1.weight": t, "final_layer.weight": t}) == "official"
    assert suggest_source({"module.conv1.weight": t, "module.final_layer.weight": t}) == "official"
    official_mspn = {"top.conv.weight": t, "stage0.downsample.layer1.0.conv_bn_relu1.conv.weight": t}
    assert suggest_source(official_mspn) == "official"
    ambiguous = [
        {"backbone.x": t, "head.final_layer.weight": t, "keypoint_head.final_layer.weight": t},
        {"backbone.conv1.weight": t},  # a backbone without any head
        {"fc.weight": t, "conv1.weight": t},  # nothing recognisable
        {},
        {"head.final_layer.weight": t, "final_layer.weight": t},
        {"backbone.conv1.weight": t, "final_layer.weight": t},
    ]
    for sd in ambiguous:
        with pytest.raises(CheckpointError, match="source"):
            suggest_source(sd)


def test_save_state_dict_writes_a_plain_state_dict(tmp_path):
    model = small_hrnet(5)
    path = save_state_dict(model, tmp_path / "sub" / "ours.pth")
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert isinstance(raw, dict) and list(raw) == list(model.state_dict())
    assert all(torch.equal(raw[k], v) for k, v in model.state_dict().items())


def test_the_layout_a_file_declares(tmp_path):
    """MMPose 1.x ``meta.dataset_meta`` and our own files written with a layout declare one; others do not;
    metadata of another size than the network is refused naming the file."""
    model = small_hrnet(num_keypoints=17)
    for layout in (COCO17, POSETRACK18):
        path = save_state_dict(model, tmp_path / f"{layout.name}.pth", layout=layout)
        assert load_weights(small_hrnet(1, num_keypoints=17), path) == ("native", layout)
        assert checkpoint_layout(read_checkpoint_file(path), str(path)) is layout
    plain = save_state_dict(model, tmp_path / "plain.pth")
    assert load_weights(small_hrnet(2, num_keypoints=17), plain, "official") == ("official", None)
    assert checkpoint_layout({"meta": {"epoch": 3}}, "x") is None
    with pytest.raises(CheckpointError, match="posetrack18.pth.*17 keypoints.*HRNet has 3"):
        load_weights(small_hrnet(), tmp_path / "posetrack18.pth")
    bad = {"meta": {"dataset_meta": {"keypoint_id2name": {0: "a", 1: "b"}, "flip_indices": [0, 1, 5]}}}
    with pytest.raises(CheckpointError, match="odd.pth.*dataset_meta"):
        checkpoint_layout(bad, "odd.pth")
    assert FORMATS == ("official", "mmpose0x", "mmpose1x", "native")
