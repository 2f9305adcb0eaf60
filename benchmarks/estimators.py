"""Estimator size and CPU throughput, one JSON line per model.

Usage: ``python benchmarks/estimators.py [--models hrnet_w32 ...|all] [--batches 1 8 32] [--repeats 3]
[--compile] [--paths ...] [--threads N] [--sizes-only]``.

``--sizes-only``: parameters and MACs only (built on the meta device, no timing), one line per model. The
bottom-up MultiPoseNet models (``multiposenet_r50`` / ``_r101``, in ``all``) always get only this line, at
their 480x480 input and per frame (a top-down model's MACs are per person crop), with the PRN's parameters and
MACs per person beside; their speed against the number of people is ``benchmarks/multiposenet.py``.

Per model: parameters; conv/linear MACs at the input size (batch 1, ``benchmarks/macs.py`` convention) and the
model_stats.json reference when there is one; then for every batch size the crops/s of each inference path,
its ratio to fp32 eager of the same model measured in the same run, the max abs difference of its heatmaps
from eager's on the same random input, and the achieved arithmetic rate (2 x MACs x crops/s) as a fraction
of a 2048x2048 fp32 matmul rate measured in the same run. Paths:

- ``fp32_eager``: the model as built, eval, ``torch.inference_mode`` (the baseline);
- ``fp32``: ``optimize_for_inference`` default (BN folded into the convs, channels_last) - output-preserving;
- ``bf16``: ``optimize_for_inference(precision="bf16")`` (folded, channels_last, bfloat16 weights/activations);
- ``bf16_autocast``: the eager model under ``torch.autocast("cpu", bfloat16)`` (for comparison);
- ``fp32_compiled`` / ``bf16_compiled`` (with ``--compile``): the same plus ``torch.compile`` (Inductor,
  freezing); the one-off compile seconds per batch shape are reported;
- ``fp32_jit`` (only when asked with ``--paths``): the folded channels_last module traced with TorchScript,
  ``torch.jit.freeze`` + ``torch.jit.optimize_for_inference`` (oneDNN graph rewrites). TorchScript is
  deprecated, so this path is measured here and not offered by ``estimators.optimize``.

Random weights, random BN statistics (so folding is not trivially exact). Timing: every repeat runs each path
once in turn (interleaved, so load changes hit all paths alike); crops/s from the best repeat, the median
also given. Other processes share the CPU: compare ratios within one line, not across runs.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.macs import count_macs, count_params  # noqa: E402
from estimators import build_model, get_spec, list_models  # noqa: E402
from estimators.optimize import max_abs_diff, optimize_for_inference  # noqa: E402

_SHARED = Path(os.environ.get("POSETRACK_SHARED", Path(__file__).resolve().parents[2] / "shared"))
MODEL_STATS = _SHARED / "reference" / "model_stats.json"
# Our registry name -> (section, name) in model_stats.json (official code where it exists, else MMPose).
STATS_NAMES = {
    "hrnet_w32": ("official", "hrnet_w32"), "hrnet_w48": ("official", "hrnet_w48"),
    "mspn_1stg": ("mmpose", "mspn_1stg"), "mspn_2stg": ("mmpose", "mspn_2stg"),
    "mspn_3stg": ("mmpose", "mspn_3stg"), "mspn_4stg": ("mmpose", "mspn_4stg"),
    "rsn_18": ("mmpose", "rsn18"), "rsn_50": ("mmpose", "rsn50"), "rsn50_2x": ("mmpose", "2xrsn50"),
    "rsn50_3x": ("mmpose", "3xrsn50"), "rsn50_4x": ("mmpose", "4xrsn50"), "rsn18_4x": ("official", "4xrsn18"),
    "rsn_18_prm": ("mmpose", "rsn18_prm"), "rsn_50_prm": ("mmpose", "rsn50_prm"),
    "rsn50_2x_prm": ("mmpose", "2xrsn50_prm"), "rsn50_4x_prm": ("mmpose", "4xrsn50_prm"),
}
ALL_PATHS = ("fp32_eager", "fp32", "bf16", "bf16_autocast", "fp32_compiled", "bf16_compiled", "fp32_jit")
DEFAULT_PATHS = ("fp32_eager", "fp32", "bf16", "bf16_autocast", "fp32_compiled", "bf16_compiled")


MATMUL_N = 2048


def matmul_gflops(n: int = MATMUL_N, repeats: int = 5) -> float:
    """Best fp32 GFLOP/s (2 n^3 / s) of an n x n matmul on this CPU, now."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _randomise_bn(model: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g) * 0.2 - 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)


def reference_stats(name: str, size: tuple[int, int]) -> dict | None:
    if name not in STATS_NAMES or not MODEL_STATS.is_file():
        return None
    section, key = STATS_NAMES[name]
    entry = json.loads(MODEL_STATS.read_text()).get(section, {}).get(key)
    if not entry:
        return None
    at = entry.get(f"{size[0]}x{size[1]}", {})
    return {"source": f"{section}/{key}", "params": entry.get("params"), "conv_linear_macs": at.get("conv_linear_macs")}


def build_paths(model: nn.Module, names: list[str], size: tuple[int, int], batches: list[int]) -> tuple[dict, dict]:
    """name -> callable(x) -> heatmaps, and name -> preparation info (seconds, compile seconds)."""
    paths: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
    info: dict[str, dict] = {}
    example = (1, 3, *size)
    for name in names:
        t0 = time.perf_counter()
        if name == "fp32_eager":
            paths[name] = model
        elif name == "bf16_autocast":
            def autocast_forward(x, m=model):
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return m(x).float()
            paths[name] = autocast_forward
        elif name == "fp32_jit":
            fast = optimize_for_inference(model, example_shape=example)
            with torch.inference_mode(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                example_x = torch.zeros(example).contiguous(memory_format=torch.channels_last)
                traced = torch.jit.trace(fast.module, example_x)
                frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced))

            def jit_forward(x, f=frozen):
                return f(x.contiguous(memory_format=torch.channels_last)).contiguous()
            paths[name] = jit_forward
            info[name] = {"prepare_s": round(time.perf_counter() - t0, 2)}
        else:
            precision = "bf16" if name.startswith("bf16") else "fp32"
            compiled = name.endswith("_compiled")
            fast = optimize_for_inference(model, precision=precision, compile=compiled, example_shape=example,
                                          batch_sizes=tuple(sorted(set(batches))))
            paths[name] = fast
            info[name] = {"prepare_s": round(time.perf_counter() - t0, 2), "folded_bn": len(fast.folded_pairs)}
            if compiled:
                fast.warmup(size)
                info[name]["compile_s"] = {str(k[0]): round(v, 1) for k, v in fast.compile_seconds.items()}
    return paths, info


def bench_model(name: str, args: argparse.Namespace, mm_gflops: float) -> dict:
    size = (args.height, args.width)
    torch.manual_seed(0)
    model = build_model(name).eval()
    _randomise_bn(model)
    for p in model.parameters():
        p.requires_grad_(False)
    macs = count_macs(model, size)
    line: dict = {"model": name, "input": f"{size[0]}x{size[1]}", "params": count_params(model), "macs": macs,
                  "gmac_1e9": round(macs / 1e9, 3), "gmac_2p30": round(macs / 2**30, 3)}
    ref = reference_stats(name, size)
    if ref and ref["conv_linear_macs"]:
        line["reference"] = ref
        line["macs_vs_reference"] = round(macs / ref["conv_linear_macs"] - 1, 6)
        line["params_vs_reference"] = ref["params"] and round(line["params"] / ref["params"] - 1, 6)
    names = [p for p in ALL_PATHS if p in args.paths and (args.compile or not p.endswith("_compiled"))]
    if "fp32_eager" not in names:
        names.insert(0, "fp32_eager")
    paths, info = build_paths(model, names, size, args.batches)
    line["prepare"] = info
    line["threads"] = torch.get_num_threads()
    results = {}
    gen = torch.Generator().manual_seed(1)
    for batch in args.batches:
        x = torch.randn(batch, 3, *size, generator=gen)
        times: dict[str, list[float]] = {n: [] for n in names}
        mm_times: list[float] = []
        a, b = torch.randn(MATMUL_N, MATMUL_N), torch.randn(MATMUL_N, MATMUL_N)
        outs: dict[str, torch.Tensor] = {}
        with torch.inference_mode():
            for n in names:  # warm-up (oneDNN primitive creation, compiled-graph first call) + outputs
                outs[n] = paths[n](x).float()
            for _ in range(args.repeats):
                for n in names:
                    times[n].append(_timed(lambda n=n, x=x: paths[n](x)))
                # The reference matmul rate, timed between the paths so it sees the same machine load.
                mm_times += [_timed(lambda a=a, b=b: a @ b) for _ in range(3)]
        mm_gflops = max(mm_gflops, 2 * MATMUL_N**3 / min(mm_times) / 1e9)
        eager_best = min(times["fp32_eager"])
        scale = float(outs["fp32_eager"].abs().max())
        per_batch = {}
        for n in names:
            best, med = min(times[n]), statistics.median(times[n])
            cps = batch / best
            diff = max_abs_diff(outs[n], outs["fp32_eager"])
            per_batch[n] = {
                "crops_per_s": round(cps, 2), "crops_per_s_median": round(batch / med, 2),
                "ratio_vs_eager": round(eager_best / best, 3),
                "max_abs_diff": float(f"{diff:.3g}"), "max_rel_diff": float(f"{diff / scale:.3g}") if scale else None,
                "matmul_fraction": round(2 * macs * cps / (mm_gflops * 1e9), 3),
            }
        results[str(batch)] = per_batch
        print(f"# {name} batch {batch}: " + ", ".join(f"{n} {v['crops_per_s']}/s x{v['ratio_vs_eager']}"
                                                    for n, v in per_batch.items()), file=sys.stderr, flush=True)
    for per_batch in results.values():  # against the best matmul rate seen anywhere in the run
        for v in per_batch.values():
            v["matmul_fraction"] = round(2 * macs * v["crops_per_s"] / (mm_gflops * 1e9), 3)
    line["matmul_fp32_gflops"] = round(mm_gflops, 1)  # best seen in this run (start + between the paths)
    line["heatmap_max_eager"] = float(f"{scale:.3g}")
    line["batches"] = results
    return line


def size_line(name: str, size: tuple[int, int]) -> dict:
    """Parameters and conv/linear MACs of ``name`` (batch 1), built on the meta device (shapes only, no
    arithmetic). size: (h, w) of a top-down crop; a MultiPoseNet model uses its spec's input (480x480), per frame."""
    spec = get_spec(name)
    bottom_up = spec.kind == "multiposenet"
    with torch.device("meta"):
        if bottom_up:
            from estimators.multiposenet import NUM_KEYPOINTS, PRN_SIZE, PoseResidualNetwork, build_multiposenet

            model, prn = build_multiposenet(name), PoseResidualNetwork()
            size = (spec.input_size[1], spec.input_size[0])
        else:
            model = build_model(name)
        macs = count_macs(model, size)
        line: dict = {"model": name, "kind": spec.kind, "input": f"{size[0]}x{size[1]}",
                      "macs_per": "frame" if bottom_up else "person crop", "params": count_params(model),
                      "macs": macs, "gmac_1e9": round(macs / 1e9, 3), "gmac_2p30": round(macs / 2**30, 3)}
        if bottom_up:
            line["prn_params"] = count_params(prn)
            line["prn_macs_per_person"] = count_macs(prn, PRN_SIZE, in_channels=NUM_KEYPOINTS)
    ref = reference_stats(name, size)
    if ref and ref["conv_linear_macs"]:
        line["reference"] = ref
    return line


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["hrnet_w32"], help="registry names, or 'all'")
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--height", type=int, default=256)
    ap.add_argument("--width", type=int, default=192)
    ap.add_argument("--paths", nargs="+", default=list(DEFAULT_PATHS), choices=ALL_PATHS)
    ap.add_argument("--compile", action="store_true", help="also measure the torch.compile paths (slow to build)")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    ap.add_argument("--sizes-only", action="store_true", help="parameters and MACs only, no timing")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    networks = list_models("topdown")  # the torch networks (BlazePose has its own benchmark)
    bottom_up = list_models("multiposenet")  # sizes only here (speed: benchmarks/multiposenet.py)
    models = networks + bottom_up if args.models == ["all"] else args.models
    unknown = sorted(set(models) - set(networks) - set(bottom_up))
    if unknown:
        ap.error(f"unknown model(s) {unknown}; valid: {', '.join(networks + bottom_up)}")
    if any(b <= 0 for b in args.batches) or args.repeats <= 0:
        ap.error("--batches and --repeats must be positive")
    for name in models:
        if args.sizes_only or name in bottom_up:
            print(json.dumps(size_line(name, (args.height, args.width))), flush=True)
    models = [m for m in models if not args.sizes_only and m not in bottom_up]
    mm = matmul_gflops() if models else 0.0
    for name in models:
        if name == "blazepose" or name.startswith("blazepose"):
            continue  # not a heatmap network of the contract
        print(json.dumps(bench_model(name, args, mm)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
