"""Output-preserving CPU inference preparation for the top-down estimators (HRNet, MS-HRNet, MSPN, RSN).

``optimize_for_inference(model, precision="fp32" | "bf16", compile=False)`` returns a :class:`FastForward`:
a callable ``x (B, 3, H, W) float32 normalised crops -> heatmaps (B, K, H/4, W/4) float32`` that runs a
prepared deep copy of the model (the model passed in is never modified):

- eval mode, no autograd (``torch.inference_mode``);
- every BatchNorm that directly and exclusively consumes a convolution's output is folded into that
  convolution (``torch.nn.utils.fusion.fuse_conv_bn_eval``: exact algebra, float rounding only) and replaced
  by ``nn.Identity``. Pairs are found generically at run time, not from attribute names: one traced forward
  records which BN read which conv's output tensor (same object, not modified in place since), and the
  autograd graph confirms that the BN is the only consumer of that tensor (so ``y = conv(x); bn(y) + y``
  and ``conv -> relu_(inplace) -> bn`` are left alone). It works for any module layout (Sequential blocks,
  ``conv1/bn1`` attribute pairs, ``ConvModule``-like wrappers);
- weights and activations in ``torch.channels_last`` (NHWC), oneDNN's native convolution layout;
- ``precision="bf16"``: the folded fp32 weights are rounded once to bfloat16 and the forward runs in bfloat16
  (heatmaps returned as float32). This changes outputs (about 1e-2 absolute on heatmaps); see the benchmark
  ``benchmarks/bf16_keypoints.py`` for its effect on decoded keypoints;
- ``compile=True`` (opt-in): ``torch.compile`` (Inductor, weight freezing, static shapes). A new input shape
  costs tens of seconds of compilation on a 2-core CPU, so batches are zero-padded up to one of a few fixed
  sizes (``batch_sizes``, default 1, 8, 32) and larger batches are split into chunks of the largest size: at
  most ``len(batch_sizes)`` compilations per crop size, whose one-off cost is recorded in
  ``FastForward.compile_seconds``.

Nothing here changes process-wide state (thread counts, backend flags, Inductor config).
"""
from __future__ import annotations

import copy
import inspect
import time
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

FAST_PRECISIONS = ("fp32", "bf16")  # of estimators.precision.PRECISIONS, those this path supports
DEFAULT_BATCH_SIZES = (1, 8, 32)

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_BNS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


class OptimizeOptionError(ValueError):
    """An argument of :func:`optimize_for_inference` / :class:`FastForward` is invalid."""


class InputShapeError(ValueError):
    """The batch given to a :class:`FastForward` does not have the expected shape or dtype."""


class ModelOutputError(ValueError):
    """The prepared model did not return a single heatmap tensor."""


# ----------------------------------------------------------------------------------------------------------
# BatchNorm folding
# ----------------------------------------------------------------------------------------------------------
def _flatten_tensors(obj: Any) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (list, tuple)):
        return [t for o in obj for t in _flatten_tensors(o)]
    if isinstance(obj, dict):
        return [t for o in obj.values() for t in _flatten_tensors(o)]
    return []


def _accepts_return_all(model: nn.Module) -> bool:
    try:
        return "return_all" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtin / scripted forwards
        return False


def find_conv_bn_pairs(model: nn.Module, example: torch.Tensor) -> list[tuple[str, str]]:
    """Names ``(conv, bn)`` of every BatchNorm that can be folded into the convolution (or Linear) feeding it.

    Args:
        model: an ``nn.Module`` in eval mode (not modified; hooks are removed, ``requires_grad`` restored).
        example: ``(1, C, H, W) float32`` input valid for ``model`` (content irrelevant, any valid size).

    A pair qualifies when, during one forward pass (with ``return_all=True`` when the forward accepts it,
    so every output branch is live): the conv and the BN each run exactly once, the BN's input is the very
    tensor the conv returned and was not modified in place in between, the BN uses running statistics, and
    in the autograd graph the conv's output feeds nothing but that BN.
    """
    named = dict(model.named_modules())
    conv_names = {
        m: n for n, m in named.items()
        # Grouped transposed convs are left alone (their weight is (C_in, C_out/groups, ...), which the
        # library fold does not reshape per group); Linear only feeding a BN1d on (B, C) features.
        if isinstance(m, _CONVS + (nn.Linear,)) or (isinstance(m, _TRANSPOSED) and m.groups == 1)
    }
    bn_names = {m: n for n, m in named.items() if isinstance(m, _BNS) and m.running_mean is not None}
    conv_out: dict[str, list[tuple[torch.Tensor, int]]] = {}
    bn_in: dict[str, list[tuple[torch.Tensor, int]]] = {}
    bn_node: dict[str, Any] = {}

    conv_node: dict[str, Any] = {}
    unfoldable: set[str] = set()

    def conv_hook(module, inputs, output):
        if isinstance(module, nn.Linear) and output.dim() != 2:
            unfoldable.add(conv_names[module])  # BatchNorm1d on (B, L, C) normalises L, not the features
        conv_out.setdefault(conv_names[module], []).append((output, output._version))
        conv_node[conv_names[module]] = output.grad_fn

    def bn_pre_hook(module, inputs):
        bn_in.setdefault(bn_names[module], []).append((inputs[0], inputs[0]._version))

    def bn_hook(module, inputs, output):
        # Read grad_fn now: a later in-place op (ReLU(inplace=True)) rebases the tensor's grad_fn.
        bn_node[bn_names[module]] = output.grad_fn

    handles = [m.register_forward_hook(conv_hook) for m in conv_names]
    handles += [m.register_forward_pre_hook(bn_pre_hook) for m in bn_names]
    handles += [m.register_forward_hook(bn_hook) for m in bn_names]
    saved_flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in saved_flags:
            if p.is_floating_point():
                p.requires_grad_(True)
        with torch.enable_grad():
            x = example.detach().clone().requires_grad_(True)
            out = model(x, return_all=True) if _accepts_return_all(model) else model(x)
    finally:
        for h in handles:
            h.remove()
        for p, flag in saved_flags:
            p.requires_grad_(flag)

    # Count, for every autograd node reachable from the outputs, how many edges point at it.
    consumers: dict[Any, list[Any]] = {}
    seen: set[Any] = set()
    stack = [t.grad_fn for t in _flatten_tensors(out) if t.grad_fn is not None]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        for nxt, _ in node.next_functions:
            if nxt is not None:
                consumers.setdefault(nxt, []).append(node)
                stack.append(nxt)

    by_tensor = {
        id(calls[0][0]): name for name, calls in conv_out.items() if len(calls) == 1 and name not in unfoldable
    }
    pairs = []
    for bn_name, calls in bn_in.items():
        if len(calls) != 1:
            continue
        tensor, version = calls[0]
        conv_name = by_tensor.get(id(tensor))
        if conv_name is None:
            continue
        produced, produced_version = conv_out[conv_name][0]
        if produced is not tensor or version != produced_version:
            continue
        users = consumers.get(conv_node[conv_name], [])
        # Zero users: neither the conv output nor the BN reaches any output, folding changes nothing visible.
        if len(users) > 1 or (len(users) == 1 and users[0] is not bn_node.get(bn_name)):
            continue
        pairs.append((conv_name, bn_name))
    return pairs


def fold_batchnorm(model: nn.Module, example: torch.Tensor) -> list[tuple[str, str]]:
    """Fold, IN PLACE, every BatchNorm found by :func:`find_conv_bn_pairs` into its convolution.

    ``model`` must be in eval mode; each folded conv gets ``weight * gamma / sqrt(var + eps)`` and bias
    ``(bias - mean) * gamma / sqrt(var + eps) + beta``; the BN becomes ``nn.Identity``. Returns the pairs.
    """
    if model.training:
        raise OptimizeOptionError("fold_batchnorm: model must be in eval mode (BN running statistics are folded)")
    pairs = find_conv_bn_pairs(model, example)
    for conv_name, bn_name in pairs:
        conv = model.get_submodule(conv_name)
        bn = model.get_submodule(bn_name)
        if isinstance(conv, nn.Linear):
            fused = fuse_linear_bn_eval(conv, bn)
        else:
            fused = fuse_conv_bn_eval(conv, bn, transpose=isinstance(conv, _TRANSPOSED))
        model.set_submodule(conv_name, fused)
        model.set_submodule(bn_name, nn.Identity())
    return pairs


# ----------------------------------------------------------------------------------------------------------
# The prepared forward
# ----------------------------------------------------------------------------------------------------------
class FastForward:
    """A prepared estimator forward: ``__call__(x (B, 3, H, W) float32) -> heatmaps (B, K, h, w) float32``.

    Built by :func:`optimize_for_inference`. Attributes: ``module`` (the prepared copy), ``precision``,
    ``compiled``, ``batch_sizes`` (padding buckets when compiled), ``folded_pairs`` (list of (conv, bn)
    names), ``compile_seconds`` (dict ``(batch, H, W) -> seconds`` of each one-off compilation), and the
    model attributes ``family`` (its family name), ``arch``, ``num_keypoints`` when the model has them.
    ``pad_batches`` (default: ``compiled``) zero-pads every batch to a size in ``batch_sizes``.
    Output heatmaps are plain contiguous float32 (NCHW) whatever the internal layout and precision.
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        precision: str,
        compiled: bool,
        batch_sizes: tuple[int, ...],
        folded_pairs: list[tuple[str, str]],
        channels_last: bool,
        source: nn.Module,
        pad_batches: bool | None = None,
    ) -> None:
        self.module = module
        self.precision = precision
        self.compiled = compiled
        self.batch_sizes = batch_sizes
        self.folded_pairs = folded_pairs
        self.channels_last = channels_last
        self.pad_batches = compiled if pad_batches is None else bool(pad_batches)
        self.compile_seconds: dict[tuple[int, ...], float] = {}
        self.shapes_run: set[tuple[int, ...]] = set()  # input shapes the prepared module has been called with
        self._dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        self._runner = (
            torch.compile(module, dynamic=False, options={"freezing": True}) if compiled else module
        )
        for attr in ("family", "arch", "num_keypoints"):
            if hasattr(source, attr):
                setattr(self, attr, getattr(source, attr))

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self._dtype)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        key = tuple(x.shape)
        first = self.compiled and key not in self.compile_seconds
        self.shapes_run.add(key)
        t0 = time.perf_counter()
        out = self._runner(x)
        if first:
            self.compile_seconds[key] = time.perf_counter() - t0
        if not isinstance(out, torch.Tensor):
            raise ModelOutputError(
                f"FastForward: the model returned {type(out).__name__}, expected one (B, K, h, w) heatmap tensor"
            )
        return out.float().contiguous()

    def _bucket(self, n: int) -> int:
        for b in self.batch_sizes:
            if b >= n:
                return b
        return self.batch_sizes[-1]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
            raise InputShapeError(
                f"FastForward: input must be a (B, C, H, W) floating tensor, got "
                f"{type(x).__name__} {tuple(getattr(x, 'shape', ()))} {getattr(x, 'dtype', '')}"
            )
        n = x.shape[0]
        with torch.inference_mode():
            if n == 0:  # the output shape still comes from the network (K, h, w depend on it)
                dummy = x.new_zeros((self._bucket(1) if self.pad_batches else 1,) + tuple(x.shape[1:]))
                return self._run(dummy)[:0]
            if not self.pad_batches:
                return self._run(x)
            # Pad to a fixed batch size (zeros; BN is folded and every op is per-sample, so padding rows do
            # not influence the real ones) so that the compiled graph is reused instead of recompiled.
            outs = []
            top = self.batch_sizes[-1]
            for start in range(0, n, top):
                chunk = x[start:start + top]
                b = self._bucket(chunk.shape[0])
                if b != chunk.shape[0]:
                    pad = chunk.new_zeros((b - chunk.shape[0],) + tuple(chunk.shape[1:]))
                    chunk = torch.cat([chunk, pad])
                outs.append(self._run(chunk)[: min(top, n - start)])
            return outs[0] if len(outs) == 1 else torch.cat(outs)

    def warmup(self, input_size: tuple[int, int], in_channels: int = 3) -> dict[tuple[int, ...], float]:
        """Run (and, when compiled, compile) every batch size once for ``input_size (H, W)`` crops.

        Returns ``compile_seconds`` (empty when not compiled). Call it at start-up so no frame pays for it.
        """
        sizes = self.batch_sizes if self.compiled else self.batch_sizes[:1]
        for b in sizes:
            self(torch.zeros(b, in_channels, *input_size))
        return dict(self.compile_seconds)


def optimize_for_inference(
    model: nn.Module,
    *,
    precision: str = "fp32",
    compile: bool = False,
    example_shape: tuple[int, int, int, int] | None = None,
    channels_last: bool = True,
    fold_bn: bool = True,
    batch_sizes: Iterable[int] = DEFAULT_BATCH_SIZES,
    pad_batches: bool | None = None,
) -> FastForward:
    """Prepare a deep copy of ``model`` for fast CPU inference (the argument is left untouched).

    Args:
        model: an estimator (``forward(x) -> (B, K, H/4, W/4)``) or any conv net returning one tensor.
        precision: ``"fp32"`` (output-preserving: heatmaps equal to eager within float rounding, ~1e-6)
            or ``"bf16"`` (bfloat16 weights and activations; heatmaps differ by ~1e-2).
        compile: wrap the prepared module in ``torch.compile`` (Inductor, frozen weights, static shapes);
            opt-in because each new batch shape compiles once (tens of seconds on 2 cores).
        example_shape: ``(1, C, H, W)`` input used once to discover the conv->BN pairs; default
            ``(1, 3, 128, 96)``, then ``(1, 3, 256, 192)`` if the model rejects it. Any size the model
            accepts gives the same pairs; smaller is faster.
        channels_last: use NHWC weights/activations.
        fold_bn: fold BatchNorm into the preceding convolutions.
        batch_sizes: increasing batch sizes the compiled path pads to.
        pad_batches: pad batches to ``batch_sizes`` (default: only when compiled).
    """
    if precision not in FAST_PRECISIONS:
        raise OptimizeOptionError(f"optimize_for_inference: precision must be one of {FAST_PRECISIONS}, "
                                  f"got {precision!r}")
    sizes = tuple(int(b) for b in batch_sizes)
    if not sizes or any(b <= 0 for b in sizes) or list(sizes) != sorted(set(sizes)):
        raise OptimizeOptionError(
            f"optimize_for_inference: batch_sizes must be strictly increasing positive ints, got {tuple(batch_sizes)!r}"
        )
    if example_shape is not None:
        shape = tuple(example_shape)
        if len(shape) != 4 or any(int(v) <= 0 for v in shape):
            raise OptimizeOptionError(f"optimize_for_inference: example_shape must be (1, C, H, W), "
                                      f"got {example_shape!r}")
        shapes = [(1,) + tuple(int(v) for v in shape[1:])]
    else:
        # Half size first (4x cheaper trace); the full 256x192 crop if the model rejects it.
        shapes = [(1, 3, 128, 96), (1, 3, 256, 192)]

    prepared = copy.deepcopy(model).eval()
    # The copy lives on the CPU in float32 whatever the source (folding is done in float32).
    prepared = prepared.to(device="cpu", dtype=torch.float32)
    pairs: list[tuple[str, str]] = []
    if fold_bn:
        for i, shape in enumerate(shapes):
            try:
                pairs = fold_batchnorm(prepared, torch.zeros(shape))
                break
            except RuntimeError:
                if i == len(shapes) - 1:
                    raise
    for p in prepared.parameters():
        p.requires_grad_(False)
    if precision == "bf16":
        # Rounding the folded weights once beats autocast, which re-casts every weight on every call.
        prepared = prepared.to(torch.bfloat16)
    if channels_last:
        prepared = prepared.to(memory_format=torch.channels_last)
    return FastForward(
        prepared,
        precision=precision,
        compiled=bool(compile),
        batch_sizes=sizes,
        folded_pairs=pairs,
        channels_last=channels_last,
        source=model,
        pad_batches=pad_batches,
    )


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """``max |a - b|`` over all elements, in float64 (``a``, ``b``: same shape)."""
    if a.shape != b.shape:
        raise InputShapeError(f"max_abs_diff: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")
    return float((a.double() - b.double()).abs().max()) if a.numel() else 0.0


__all__ = [
    "DEFAULT_BATCH_SIZES",
    "FastForward",
    "InputShapeError",
    "ModelOutputError",
    "OptimizeOptionError",
    "FAST_PRECISIONS",
    "find_conv_bn_pairs",
    "fold_batchnorm",
    "max_abs_diff",
    "optimize_for_inference",
]
