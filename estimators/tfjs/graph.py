"""Convert a TensorFlow.js graph model into a ``torch.fx.GraphModule`` with TensorFlow semantics.

``load_graph_model(path)`` reads ``model.json`` + shards (:mod:`estimators.tfjs.weights`) and returns a
GraphModule whose forward takes the graph's inputs (TF layout: NHWC images) and returns a tuple of its outputs
(TF layout). Inside, 4-D spatial tensors are NCHW: an NHWC input is permuted once (a view; an NHWC-contiguous
input becomes a channels_last NCHW tensor, no copy) and kept NCHW through every convolution, elementwise op,
resize, pool, pad and concat; only ops that need the logical layout (Reshape, GatherNd, ...) see NHWC again.
Convolutions are real ``nn.Conv2d`` modules (``TfConv2d``: fused bias + activation, TF SAME padding), so the
result moves to CUDA, compiles and exports like any other module.

The graph is evaluated once at build time on an example input of the signature's shape (batch 1), which gives
every tensor's shape and folds every node that does not depend on an input into a constant buffer. Spatial
sizes are therefore fixed at build time (build again for another input size). The batch dimension is free
wherever the ops allow it: ``module.batch_free`` is True when every output was computed from the inputs with
batch-safe ops only (convolutions, elementwise, resize, concat/reductions over non-batch axes, reshapes that keep
the leading dimension); ``module.batch_breaks`` names the nodes where a batched tensor met an op that
hard-codes batch 1 (Unpack of the batch axis, GatherNd decoding, Shape arithmetic...) and values fixed at their
build-time example (a runtime resize size, say). Cut such post-processing off with ``outputs=`` (the raw heads)
and ``inputs=`` (start the graph after a batch-1 preprocessing prologue); :mod:`estimators.tfjs.known` lists
those node names for the models we use.

An op with no converter is refused at load time naming the op, the node and the model.
"""
from __future__ import annotations

import base64
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch import fx, nn

from estimators.tfjs import ops
from estimators.tfjs.weights import TfjsModel, read_model

__all__ = ["CONVERTERS", "SUPPORTED_OPS", "TfjsGraphError", "build_graph_module", "load_graph_model", "required_ops"]

TF_DTYPES = {"DT_FLOAT": torch.float32, "DT_INT32": torch.int32, "DT_BOOL": torch.bool, "DT_INT64": torch.int64,
             "DT_HALF": torch.float16, "DT_UINT8": torch.uint8}
NHWC_TO_NCHW_AXIS = (0, 2, 3, 1)  # logical NHWC axis -> physical NCHW axis


class TfjsGraphError(ValueError):
    """The graph cannot be converted; the message names the model, the node and the op or field."""


@dataclass(eq=False)
class Value:
    """One tensor of the graph during conversion.

    ``example``: the value on the build-time example input, in PHYSICAL layout (NCHW when ``layout == 'nchw'``,
    the logical TF layout otherwise). ``node``: the fx node computing it (None for a constant until a runtime op
    needs it as a buffer). ``const``: independent of the inputs. ``batch``: a runtime tensor whose leading
    logical dimension is a free batch, computed with batch-safe ops only.
    """

    example: torch.Tensor
    layout: str = "plain"
    node: fx.Node | None = None
    const: bool = True
    batch: bool = False

    @property
    def rank(self) -> int:
        return self.example.dim()

    @property
    def shape(self) -> tuple[int, ...]:
        """The logical (TF) shape."""
        s = tuple(self.example.shape)
        return (s[0], s[2], s[3], s[1]) if self.layout == "nchw" else s


class _Node:
    """A GraphDef node with attribute accessors."""

    def __init__(self, raw: dict[str, Any], model: str):
        self.raw = raw
        self.name: str = raw["name"]
        self.op: str = raw["op"]
        self.inputs = [i for i in raw.get("input", []) if not i.startswith("^")]
        self.attr: dict[str, Any] = raw.get("attr", {}) or {}
        self.model = model

    def fail(self, msg: str) -> TfjsGraphError:
        return TfjsGraphError(f"model {self.model!r}: node {self.name!r} (op {self.op}): {msg}")

    def has(self, key: str) -> bool:
        return key in self.attr

    def i(self, key: str, default: int | None = None) -> int:
        if key not in self.attr:
            if default is None:
                raise self.fail(f"attribute {key!r} is missing")
            return default
        return int(self.attr[key].get("i", 0))

    def f(self, key: str, default: float) -> float:
        return float(self.attr[key].get("f", default)) if key in self.attr else default

    def b(self, key: str, default: bool = False) -> bool:
        return bool(self.attr[key].get("b", False)) if key in self.attr else default

    def s(self, key: str, default: str | None = None) -> str:
        if key not in self.attr:
            if default is None:
                raise self.fail(f"attribute {key!r} is missing")
            return default
        return base64.b64decode(self.attr[key].get("s", "")).decode()

    def ints(self, key: str, default: Sequence[int] | None = None) -> list[int]:
        if key not in self.attr:
            if default is None:
                raise self.fail(f"attribute {key!r} is missing")
            return list(default)
        return [int(v) for v in self.attr[key].get("list", {}).get("i", [])]

    def strs(self, key: str) -> list[str]:
        if key not in self.attr:
            return []
        return [base64.b64decode(v).decode() for v in self.attr[key].get("list", {}).get("s", [])]

    def dtype(self, key: str) -> torch.dtype:
        t = self.attr.get(key, {}).get("type")
        if t not in TF_DTYPES:
            raise self.fail(f"attribute {key!r}: dtype {t!r} is not supported")
        return TF_DTYPES[t]


def _safe_name(name: str) -> str:
    tail = "_".join(name.split("/")[-3:])
    out = re.sub(r"\W+", "_", tail).strip("_") or "node"
    return out if not out[0].isdigit() else "n" + out


class _Builder:
    def __init__(self, model: str):
        self.model = model
        self.graph = fx.Graph()
        self.root = nn.Module()
        self.n_buffers = 0
        self.module_names: set[str] = set()
        self.breaks: list[str] = []
        self.current: _Node | None = None
        # (id of a Value, layout) -> (that Value, kept alive so the id stays unique; its conversion)
        self.converted: dict[tuple[int, str], tuple[Value, Value]] = {}

    # --- fx plumbing -------------------------------------------------------------------------------------------
    def node_of(self, v: Value) -> fx.Node:
        if v.node is None:
            name = f"const_{self.n_buffers}"
            self.n_buffers += 1
            self.root.register_buffer(name, v.example.detach().clone())
            v.node = self.graph.get_attr(name)
        return v.node

    def _fx_args(self, obj: Any) -> Any:
        if isinstance(obj, Value):
            return self.node_of(obj)
        if isinstance(obj, (list, tuple)):
            return type(obj)(self._fx_args(o) for o in obj)
        return obj

    @staticmethod
    def _examples(obj: Any) -> Any:
        if isinstance(obj, Value):
            return obj.example
        if isinstance(obj, (list, tuple)):
            return type(obj)(_Builder._examples(o) for o in obj)
        return obj

    @staticmethod
    def _values(obj: Any) -> list[Value]:
        if isinstance(obj, Value):
            return [obj]
        if isinstance(obj, (list, tuple)):
            return [v for o in obj for v in _Builder._values(o)]
        return []

    def call(self, fn: Callable | nn.Module, *args: Any, layout: str = "plain", batch_safe: bool = True,
             n_out: int | None = None) -> Any:
        """Run ``fn`` on the examples; emit an fx node unless every Value argument is constant.

        Returns a Value, or a list of ``n_out`` Values for a function returning a tuple.
        """
        values = self._values(args)
        with torch.no_grad():
            result = fn(*self._examples(args))
        runtime = [v for v in values if not v.const]
        if not runtime:
            if n_out is None:
                return Value(result, layout)
            return [Value(r, layout) for r in result]
        batched = bool(batch_safe) and all(v.batch for v in runtime)
        if not batch_safe and any(v.batch for v in runtime):
            self.breaks.append(f"{self.current.name} ({self.current.op})" if self.current else str(fn))
        hint = _safe_name(self.current.name) if self.current else None
        if isinstance(fn, nn.Module):
            target = self._add_module(fn, hint or "module")
            node = self.graph.create_node("call_module", target, self._fx_args(args), {}, name=hint)
        else:
            node = self.graph.create_node("call_function", fn, self._fx_args(args), {}, name=hint)
        if n_out is None:
            return Value(result, layout, node, const=False, batch=batched)
        outs = []
        for k, r in enumerate(result):
            item = self.graph.call_function(operator.getitem, (node, k))
            outs.append(Value(r, layout, item, const=False, batch=batched))
        return outs

    def _add_module(self, module: nn.Module, hint: str) -> str:
        name, k = hint, 1
        while name in self.module_names:
            k += 1
            name = f"{hint}_{k}"
        self.module_names.add(name)
        self.root.add_module(name, module)
        return name

    # --- layout ------------------------------------------------------------------------------------------------
    def plain(self, v: Value) -> Value:
        if v.layout != "nchw":
            return v
        key = (id(v), "plain")
        if key not in self.converted:
            self.converted[key] = (v, self.call(ops.to_nhwc, v))
        return self.converted[key][1]

    def nchw(self, v: Value) -> Value:
        if v.layout == "nchw":
            return v
        if v.rank != 4:
            raise self.current.fail(f"expected a 4-D NHWC tensor, got shape {list(v.shape)}")
        key = (id(v), "nchw")
        if key not in self.converted:
            self.converted[key] = (v, self.call(ops.to_nchw, v, layout="nchw"))
        return self.converted[key][1]

    def nchw_broadcast(self, v: Value) -> Value:
        if v.layout == "nchw":
            return v
        if v.rank == 4:
            return self.nchw(v)
        return self.call(ops.broadcast_nchw, v, layout="nchw", batch_safe=v.const)

    def elementwise(self, fn: Callable, inputs: Sequence[Value], *extra: Any) -> Value:
        """An elementwise op with TF broadcasting; stays NCHW when a 4-D NCHW operand is involved."""
        rank = max(v.rank for v in inputs)
        if rank == 4 and any(v.layout == "nchw" for v in inputs):
            args = [self.nchw_broadcast(v) for v in inputs]
            return self.call(fn, *args, *extra, layout="nchw", batch_safe=self._bcast_safe(inputs))
        args = [self.plain(v) for v in inputs]
        return self.call(fn, *args, *extra, batch_safe=self._bcast_safe(inputs))

    @staticmethod
    def _bcast_safe(inputs: Sequence[Value]) -> bool:
        """Broadcasting keeps a free batch when every runtime operand has the full rank (batch leading)."""
        rank = max(v.rank for v in inputs)
        return all(v.const or (v.rank == rank and v.batch) for v in inputs)


# ----------------------------------------------------------------------------------------------------------------
# converters: (builder, node, input Values) -> list of output Values

Converter = Callable[[_Builder, _Node, list[Value]], list[Value]]
_CONVERTERS: dict[str, Converter] = {}


def _register(*names: str):
    def deco(fn: Converter) -> Converter:
        for n in names:
            _CONVERTERS[n] = fn
        return fn
    return deco


def _axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def _scalar_int(b: _Builder, node: _Node, v: Value, what: str) -> int:
    if v.example.numel() != 1:
        raise node.fail(f"{what} must be a scalar, got shape {list(v.shape)}")
    if not v.const:
        b.breaks.append(f"{node.name} ({node.op}: runtime {what} fixed at its build-time value)")
    return int(v.example.reshape(-1)[0])


def _int_list(b: _Builder, node: _Node, v: Value, what: str) -> list[int]:
    if not v.const:
        b.breaks.append(f"{node.name} ({node.op}: runtime {what} fixed at its build-time value)")
    return [int(t) for t in v.example.reshape(-1).tolist()]


@_register("Identity", "StopGradient", "Snapshot", "IdentityN")
def _identity(b, node, ins):
    return list(ins)


_UNARY = {
    "Sigmoid": torch.sigmoid, "Relu": torch.relu, "Relu6": ops.relu6, "Tanh": torch.tanh, "Exp": torch.exp,
    "Sqrt": torch.sqrt, "Rsqrt": ops.rsqrt, "Abs": torch.abs, "Neg": torch.neg, "Reciprocal": ops.reciprocal,
    "Square": ops.square, "Floor": torch.floor, "Ceil": torch.ceil, "Round": torch.round, "Log": torch.log,
    "Elu": torch.nn.functional.elu, "Softplus": torch.nn.functional.softplus, "LogicalNot": ops.logical_not,
}
_BINARY = {
    "Add": torch.add, "AddV2": torch.add, "Sub": torch.sub, "Mul": torch.mul, "RealDiv": ops.real_div,
    "Div": ops.div_tf, "FloorDiv": ops.floor_div, "FloorMod": ops.floor_mod, "Maximum": torch.maximum,
    "Minimum": torch.minimum, "SquaredDifference": ops.squared_difference, "Pow": torch.pow,
    "Equal": torch.eq, "NotEqual": torch.ne, "Less": torch.lt, "LessEqual": torch.le, "Greater": torch.gt,
    "GreaterEqual": torch.ge, "LogicalAnd": ops.logical_and, "LogicalOr": ops.logical_or, "Prelu": ops.prelu,
}


def _unary(fn):
    return lambda b, node, ins: [b.elementwise(fn, ins[:1])]


def _binary(fn):
    return lambda b, node, ins: [b.elementwise(fn, ins[:2])]


for _op, _fn in _UNARY.items():
    _CONVERTERS[_op] = _unary(_fn)
for _op, _fn in _BINARY.items():
    _CONVERTERS[_op] = _binary(_fn)


@_register("LeakyRelu")
def _leaky_relu(b, node, ins):
    return [b.elementwise(ops.leaky_relu, ins[:1], node.f("alpha", 0.2))]


@_register("Cast")
def _cast(b, node, ins):
    return [b.elementwise(ops.cast, ins[:1], node.dtype("DstT"))]


@_register("AddN")
def _add_n(b, node, ins):
    out = ins[0]
    for v in ins[1:]:
        out = b.elementwise(torch.add, [out, v])
    return [out]


@_register("Select", "SelectV2")
def _select(b, node, ins):
    cond, x, y = ins
    if node.op == "Select" and cond.rank == 1 and x.rank > 1:
        return [b.call(ops.select, b.plain(cond), b.plain(x), b.plain(y),
                       batch_safe=False)]
    return [b.elementwise(torch.where, [cond, x, y])]


@_register("FusedBatchNorm", "FusedBatchNormV3")
def _batch_norm(b, node, ins):
    return [b.elementwise(ops.batch_norm_tf, ins[:5], node.f("epsilon", 1e-3))]


# --- convolution / pooling -----------------------------------------------------------------------------------

def _spatial_attrs(node: _Node, key: str) -> tuple[int, int]:
    vals = node.ints(key, [1, 1, 1, 1])
    if len(vals) != 4 or vals[0] != 1 or vals[3] != 1:
        raise node.fail(f"attribute {key!r} = {vals}: only NHWC [1, h, w, 1] is supported")
    return vals[1], vals[2]


def _padding(node: _Node, hw: tuple[int, int], k: tuple[int, int], s: tuple[int, int],
             d: tuple[int, int]) -> tuple[int, int, int, int]:
    mode = node.s("padding")
    if mode == "VALID":
        return 0, 0, 0, 0
    if mode == "SAME":
        top, bottom = ops.same_padding(hw[0], k[0], s[0], d[0])
        left, right = ops.same_padding(hw[1], k[1], s[1], d[1])
        return left, right, top, bottom
    if mode == "EXPLICIT":
        p = node.ints("explicit_paddings")
        if len(p) != 8:
            raise node.fail(f"attribute 'explicit_paddings' = {p}: 8 values expected")
        return p[4], p[5], p[2], p[3]
    raise node.fail(f"padding {mode!r} is not supported (SAME, VALID, EXPLICIT)")


def _check_nhwc(node: _Node) -> None:
    fmt = node.s("data_format", "NHWC")
    if fmt != "NHWC":
        raise node.fail(f"data_format {fmt!r}: only NHWC is supported")


@_register("Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "FusedDepthwiseConv2dNative")
def _conv(b, node, ins):
    _check_nhwc(node)
    x, filt = ins[0], ins[1]
    if not filt.const or filt.rank != 4:
        raise node.fail("the filter must be a constant 4-D tensor")
    x = b.nchw(x)
    _, c, h, w = x.example.shape
    kh, kw, f_in, f_out = filt.example.shape
    stride, dil = _spatial_attrs(node, "strides"), _spatial_attrs(node, "dilations")
    pad = _padding(node, (h, w), (kh, kw), stride, dil)
    filt_t = filt.example.float()
    if "Depthwise" in node.op:
        if f_in != c:
            raise node.fail(f"depthwise filter has {f_in} input channels, the input {c}")
        weight, groups = ops.depthwise_weight(filt_t), c
    else:
        if c % f_in:
            raise node.fail(f"input has {c} channels, not a multiple of the filter's {f_in}")
        weight, groups = ops.conv_weight(filt_t), c // f_in
    bias = activation = prelu = None
    alpha = 0.2
    if node.op in ("_FusedConv2D", "FusedDepthwiseConv2dNative"):
        fused = node.strs("fused_ops")
        if not fused or fused[0] != "BiasAdd":
            raise node.fail(f"fused_ops {fused}: only BiasAdd[, activation] is supported")
        if len(fused) > 2:
            raise node.fail(f"fused_ops {fused}: at most one activation after BiasAdd")
        bias_v = ins[2]
        if not bias_v.const:
            raise node.fail("the fused bias must be a constant")
        bias = bias_v.example.float().reshape(-1)
        if len(fused) == 2:
            activation = fused[1]
            if activation not in ops.ACTIVATIONS:
                raise node.fail(f"fused activation {activation!r} is not supported ({', '.join(ops.ACTIVATIONS)})")
            alpha = node.f("leakyrelu_alpha", 0.2)
            if activation == "Prelu":
                if len(ins) < 4 or not ins[3].const:
                    raise node.fail("Prelu needs a constant alpha as input 3")
                prelu = ins[3].example.float().reshape(-1)
    module = ops.TfConv2d(weight, bias, stride, dil, pad, groups, activation, alpha, prelu)
    return [b.call(module, x, layout="nchw")]


@_register("MaxPool", "AvgPool")
def _pool(b, node, ins):
    _check_nhwc(node)
    x = b.nchw(ins[0])
    _, _, h, w = x.example.shape
    k, s = _spatial_attrs(node, "ksize"), _spatial_attrs(node, "strides")
    pad = _padding(node, (h, w), k, s, (1, 1))
    fn = ops.max_pool if node.op == "MaxPool" else ops.avg_pool
    return [b.call(fn, x, k, s, pad, layout="nchw")]


@_register("ResizeBilinear")
def _resize(b, node, ins):
    x = b.nchw(ins[0])
    size = _int_list(b, node, ins[1], "size")
    if len(size) != 2:
        raise node.fail(f"size must hold 2 values, got {size}")
    module = ops.TfResizeBilinear(tuple(x.example.shape[2:]), (size[0], size[1]), node.b("align_corners"),
                                  node.b("half_pixel_centers"))
    return [b.call(module, x, layout="nchw")]


# --- reductions / concat / pad / split -----------------------------------------------------------------------

_REDUCE = {"Mean": ops.tf_mean, "Sum": ops.tf_sum, "Max": ops.tf_max, "Min": ops.tf_min}


@_register(*_REDUCE)
def _reduce(b, node, ins):
    x = ins[0]
    rank = len(x.shape)
    axes = sorted({_axis(a, rank) for a in _int_list(b, node, ins[1], "axes")})
    keep = node.b("keep_dims")
    safe = 0 not in axes
    if x.layout == "nchw" and keep:
        return [b.call(_REDUCE[node.op], x, [NHWC_TO_NCHW_AXIS[a] for a in axes], True, layout="nchw",
                       batch_safe=safe)]
    return [b.call(_REDUCE[node.op], b.plain(x), axes, keep, batch_safe=safe)]


@_register("ConcatV2", "Concat")
def _concat(b, node, ins):
    if node.op == "ConcatV2":
        parts, axis_v = ins[:-1], ins[-1]
    else:
        axis_v, parts = ins[0], ins[1:]
    rank = len(parts[0].shape)
    axis = _axis(_scalar_int(b, node, axis_v, "axis"), rank)
    safe = axis != 0
    if rank == 4 and any(p.layout == "nchw" for p in parts):
        return [b.call(ops.concat, [b.nchw(p) for p in parts], NHWC_TO_NCHW_AXIS[axis], layout="nchw",
                       batch_safe=safe)]
    return [b.call(ops.concat, [b.plain(p) for p in parts], axis, batch_safe=safe)]


@_register("Pad", "PadV2")
def _pad(b, node, ins):
    x = ins[0]
    p = _int_list(b, node, ins[1], "paddings")
    rank = len(x.shape)
    if len(p) != 2 * rank:
        raise node.fail(f"paddings {p} do not match the input rank {rank}")
    value = float(ins[2].example.reshape(-1)[0]) if node.op == "PadV2" else 0.0
    pairs = [(p[2 * i], p[2 * i + 1]) for i in range(rank)]
    safe = pairs[0] == (0, 0)
    if x.layout == "nchw":
        order = [pairs[0], pairs[3], pairs[1], pairs[2]]  # N, C, H, W
    else:
        order = pairs
    flat = [v for pair in reversed(order) for v in pair]
    return [b.call(ops.pad_constant, x, flat, value, layout=x.layout, batch_safe=safe)]


@_register("Split", "SplitV")
def _split(b, node, ins):
    if node.op == "Split":
        axis_v, x = ins
        n = node.i("num_split")
    else:
        x, sizes_v, axis_v = ins
    rank = len(x.shape)
    axis = _axis(_scalar_int(b, node, axis_v, "axis"), rank)
    dim = x.shape[axis]
    if node.op == "Split":
        if dim % n:
            raise node.fail(f"axis {axis} of size {dim} does not split into {n}")
        sizes = [dim // n] * n
    else:
        sizes = _int_list(b, node, sizes_v, "size_splits")
        if -1 in sizes:
            sizes[sizes.index(-1)] = dim - sum(s for s in sizes if s != -1)
    safe = axis != 0
    if x.layout == "nchw":
        return b.call(ops.split_sizes, x, sizes, NHWC_TO_NCHW_AXIS[axis], layout="nchw", batch_safe=safe,
                      n_out=len(sizes))
    return b.call(ops.split_sizes, x, sizes, axis, batch_safe=safe, n_out=len(sizes))


@_register("Transpose")
def _transpose(b, node, ins):
    x = ins[0]
    perm = _int_list(b, node, ins[1], "perm")
    if not x.const and x.rank == 4:
        if x.layout == "plain" and perm == [0, 2, 3, 1]:  # NCHW -> NHWC: physically the input itself
            return [Value(x.example, "nchw", x.node, const=False, batch=x.batch)]
        if x.layout == "nchw" and perm == [0, 3, 1, 2]:  # NHWC -> NCHW: the physical tensor
            return [Value(x.example, "plain", x.node, const=False, batch=x.batch)]
    return [b.call(ops.transpose, b.plain(x), perm, batch_safe=perm[:1] == [0])]


@_register("DepthToSpace")
def _depth_to_space(b, node, ins):
    _check_nhwc(node)
    x = b.nchw(ins[0])
    return [b.call(ops.depth_to_space, x, node.i("block_size"), layout="nchw")]


# --- shape ops -------------------------------------------------------------------------------------------------

@_register("Reshape")
def _reshape(b, node, ins):
    x = b.plain(ins[0])
    target = _int_list(b, node, ins[1], "shape")
    with torch.no_grad():
        resolved = list(x.example.reshape(target).shape)
    keep = (not x.const and x.batch and x.rank >= 1 and len(resolved) >= 1 and resolved[0] == x.shape[0]
            and int(np.prod(resolved[1:], dtype=np.int64)) == int(np.prod(x.shape[1:], dtype=np.int64)))
    return [b.call(ops.reshape, x, resolved, keep, batch_safe=keep)]


@_register("ExpandDims")
def _expand_dims(b, node, ins):
    x = b.plain(ins[0])
    axis = _axis(_scalar_int(b, node, ins[1], "axis"), x.rank + 1)
    return [b.call(ops.expand_dims, x, axis, batch_safe=axis != 0)]


@_register("Squeeze")
def _squeeze(b, node, ins):
    x = b.plain(ins[0])
    axes = [_axis(a, x.rank) for a in node.ints("squeeze_dims", [])]
    if not axes:
        axes = [i for i, s in enumerate(x.shape) if s == 1]
    return [b.call(ops.squeeze, x, axes, batch_safe=0 not in axes)]


@_register("Pack")
def _pack(b, node, ins):
    parts = [b.plain(v) for v in ins]
    axis = _axis(node.i("axis", 0), parts[0].rank + 1)
    return [b.call(ops.pack, parts, axis, batch_safe=axis != 0)]


@_register("Unpack")
def _unpack(b, node, ins):
    x = b.plain(ins[0])
    axis = _axis(node.i("axis", 0), x.rank)
    return b.call(ops.unpack, x, axis, batch_safe=axis != 0, n_out=x.shape[axis])


@_register("Shape")
def _shape(b, node, ins):
    return [b.call(ops.shape_of, b.plain(ins[0]), batch_safe=False)]


@_register("Size")
def _size(b, node, ins):
    return [b.call(ops.size_of, ins[0], batch_safe=False)]


@_register("Range")
def _range(b, node, ins):
    return [b.call(ops.tf_range, *ins, batch_safe=False)]


@_register("Fill")
def _fill(b, node, ins):
    return [b.call(ops.fill, *ins, batch_safe=False)]


@_register("Tile")
def _tile(b, node, ins):
    x = b.plain(ins[0])
    reps = _int_list(b, node, ins[1], "multiples")
    return [b.call(ops.tile, x, reps, batch_safe=reps[:1] == [1])]


@_register("StridedSlice")
def _strided_slice(b, node, ins):
    x = b.plain(ins[0])
    begin = _int_list(b, node, ins[1], "begin")
    end = _int_list(b, node, ins[2], "end")
    strides = _int_list(b, node, ins[3], "strides")
    spec = _slice_spec(node, x.shape, begin, end, strides)
    first = next((s for s in spec if s[0] != "new"), ("all",))
    safe = first == ("all",) and spec[0][0] != "new"
    return [b.call(ops.strided_slice, x, spec, batch_safe=safe)]


def _slice_spec(node: _Node, shape: Sequence[int], begin: list[int], end: list[int],
                strides: list[int]) -> list[tuple]:
    """Resolve TF StridedSlice masks against a known input shape into a list of per-axis items."""
    bm, em = node.i("begin_mask", 0), node.i("end_mask", 0)
    ellipsis, new_axis, shrink = node.i("ellipsis_mask", 0), node.i("new_axis_mask", 0), node.i("shrink_axis_mask", 0)
    n = len(begin)
    spec: list[tuple] = []
    dim = 0
    for i in range(n):
        if ellipsis & (1 << i):
            consumed = sum(1 for j in range(i + 1, n) if not new_axis & (1 << j))
            while dim < len(shape) - consumed:
                spec.append(("all",))
                dim += 1
            continue
        if new_axis & (1 << i):
            spec.append(("new",))
            continue
        size = shape[dim]
        if shrink & (1 << i):
            idx = begin[i] + size if begin[i] < 0 else begin[i]
            if not 0 <= idx < size:
                raise node.fail(f"index {begin[i]} out of range for axis {dim} of size {size}")
            spec.append(("index", idx))
            dim += 1
            continue
        step = strides[i]
        if step == 0:
            raise node.fail("stride 0")
        if step > 0:
            lo = 0 if bm & (1 << i) else min(max(begin[i] + size if begin[i] < 0 else begin[i], 0), size)
            hi = size if em & (1 << i) else min(max(end[i] + size if end[i] < 0 else end[i], 0), size)
            spec.append(("all",) if (lo, hi, step) == (0, size, 1) else ("slice", lo, max(hi, lo), step))
        else:
            lo = size - 1 if bm & (1 << i) else min(max(begin[i] + size if begin[i] < 0 else begin[i], -1), size - 1)
            hi = -1 if em & (1 << i) else min(max(end[i] + size if end[i] < 0 else end[i], -1), size - 1)
            spec.append(("slice", lo, hi, step))
        dim += 1
    while dim < len(shape):
        spec.append(("all",))
        dim += 1
    return spec


# --- gathers / arg ops ----------------------------------------------------------------------------------------

@_register("ArgMax")
def _arg_max(b, node, ins):
    x = b.plain(ins[0])
    axis = _axis(_scalar_int(b, node, ins[1], "dimension"), x.rank)
    dtype = node.dtype("output_type") if node.has("output_type") else torch.int64
    return [b.call(ops.arg_max, x, axis, dtype, batch_safe=axis != 0)]


@_register("GatherNd")
def _gather_nd(b, node, ins):
    return [b.call(ops.gather_nd, b.plain(ins[0]), b.plain(ins[1]), batch_safe=False)]


@_register("GatherV2")
def _gather_v2(b, node, ins):
    params, indices = b.plain(ins[0]), b.plain(ins[1])
    axis = _axis(_scalar_int(b, node, ins[2], "axis"), params.rank)
    return [b.call(ops.gather_v2, params, indices, axis, node.i("batch_dims", 0),
                   batch_safe=axis != 0 and indices.const)]


@_register("TopKV2")
def _top_k(b, node, ins):
    x = b.plain(ins[0])
    k = _scalar_int(b, node, ins[1], "k")
    return b.call(ops.top_k, x, k, batch_safe=x.rank > 1, n_out=2)


@_register("SparseToDense")
def _sparse_to_dense(b, node, ins):
    return [b.call(ops.sparse_to_dense, *[b.plain(v) for v in ins[:4]], batch_safe=False)]


CONVERTERS: Mapping[str, Converter] = MappingProxyType(dict(_CONVERTERS))  # read-only from here on
SUPPORTED_OPS = frozenset(CONVERTERS) | {"Const", "Placeholder"}


# ----------------------------------------------------------------------------------------------------------------
# the build

def _split_ref(ref: str) -> tuple[str, int]:
    name, _, idx = ref.partition(":")
    return name, int(idx) if idx else 0


def required_ops(model: TfjsModel, outputs: Sequence[str] | None = None) -> dict[str, int]:
    """Op type -> count over the nodes the given outputs (default: the signature's) depend on."""
    nodes = {n["name"]: _Node(n, model.name) for n in model.nodes}
    order = _topo_order(model.name, nodes, [_split_ref(o)[0] for o in (outputs or _default_outputs(model, nodes))])
    counts: dict[str, int] = {}
    for name in order:
        counts[nodes[name].op] = counts.get(nodes[name].op, 0) + 1
    return counts


def _default_outputs(model: TfjsModel, nodes: dict[str, _Node]) -> list[str]:
    sig = model.signature.get("outputs") or {}
    names = [info.get("name", key) for key, info in sig.items()]
    if names:
        return names
    consumed = {_split_ref(i)[0] for n in nodes.values() for i in n.inputs}
    return [name for name, n in nodes.items() if name not in consumed and n.op not in ("Const", "NoOp")]


def _topo_order(model: str, nodes: dict[str, _Node], targets: Sequence[str],
                stop: frozenset[str] = frozenset()) -> list[str]:
    order: list[str] = []
    state: dict[str, int] = {}
    for target in targets:
        if target not in nodes:
            raise TfjsGraphError(f"model {model!r}: no node named {target!r}")
        stack = [(target, False)]
        while stack:
            name, done = stack.pop()
            if done:
                state[name] = 2
                order.append(name)
                continue
            if state.get(name) == 2:
                continue
            if state.get(name) == 1:
                raise TfjsGraphError(f"model {model!r}: node {name!r} ({nodes[name].op}) is part of a cycle: TF "
                                     "control flow (while loops: Enter/Merge/Switch/NextIteration) is not supported")
            state[name] = 1
            stack.append((name, True))
            if name in stop:
                continue
            for ref in reversed(nodes[name].inputs):
                dep = _split_ref(ref)[0]
                if dep not in nodes:
                    raise TfjsGraphError(f"model {model!r}: node {name!r} reads {ref!r}, which does not exist")
                if state.get(dep) != 2:
                    stack.append((dep, False))
    return order


def _placeholder_example(model: TfjsModel, node: _Node, shapes: dict[str, Sequence[int]]) -> torch.Tensor:
    dtype = node.dtype("dtype")
    if node.name in shapes:
        dims = [int(d) for d in shapes[node.name]]
    else:
        dims = [int(d.get("size", -1)) for d in node.attr.get("shape", {}).get("shape", {}).get("dim", [])]
        if dims and dims[0] == -1:
            dims[0] = 1
        if any(d < 0 for d in dims):
            raise TfjsGraphError(f"model {model.name!r}: input {node.name!r} has shape {dims} with unknown "
                                 "dimensions; pass input_shapes={name: shape}")
    return torch.zeros(dims, dtype=dtype)


def build_graph_module(model: TfjsModel, *, outputs: Sequence[str] | None = None,
                       inputs: Sequence[str] | None = None,
                       input_shapes: dict[str, Sequence[int]] | None = None) -> fx.GraphModule:
    """Convert a parsed model (see :func:`load_graph_model` for the arguments)."""
    nodes = {n["name"]: _Node(n, model.name) for n in model.nodes}
    out_refs = list(outputs) if outputs else _default_outputs(model, nodes)
    in_names = list(inputs) if inputs else [n.name for n in nodes.values() if n.op == "Placeholder"]
    for name in in_names:
        if name not in nodes:
            raise TfjsGraphError(f"model {model.name!r}: input {name!r} is not a node of the graph")
    shapes = dict(input_shapes or {})
    order = _topo_order(model.name, nodes, [_split_ref(o)[0] for o in out_refs], frozenset(in_names))
    needed = set(order)
    unknown = sorted({(nodes[n].op, n) for n in needed if nodes[n].op not in SUPPORTED_OPS
                      and n not in in_names})
    if unknown:
        op, name = unknown[0]
        more = f" (and {len(unknown) - 1} more unsupported nodes: {sorted({o for o, _ in unknown})})" \
            if len(unknown) > 1 else ""
        raise TfjsGraphError(f"model {model.name!r}: node {name!r} uses op {op!r}, which the TF.js loader does "
                             f"not implement{more}")

    # examples of cut inputs: evaluate the graph up to them on example placeholders (everything constant)
    examples: dict[str, torch.Tensor] = {}
    cut = [n for n in in_names if nodes[n].op != "Placeholder"]
    if cut:
        pre = _evaluate(model, nodes, _topo_order(model.name, nodes, cut), {}, _Builder(model.name), shapes)
        for n in cut:
            v = pre[(n, 0)]
            examples[n] = (v.example.permute(0, 2, 3, 1) if v.layout == "nchw" else v.example).contiguous()
    builder = _Builder(model.name)
    placeholders: dict[str, Value] = {}
    for name in in_names:
        ex = examples[name] if name in examples else _placeholder_example(model, nodes[name], shapes)
        fx_node = builder.graph.placeholder(_safe_name(name))
        placeholders[name] = Value(ex, "plain", fx_node, const=False, batch=True)
    values = _evaluate(model, nodes, order, placeholders, builder, shapes)

    out_nodes, batch_free = [], True
    for ref in out_refs:
        name, idx = _split_ref(ref)
        if (name, idx) not in values:
            raise TfjsGraphError(f"model {model.name!r}: output {ref!r}: node {name!r} has no output {idx}")
        v = builder.plain(values[(name, idx)])
        batch_free = batch_free and v.batch
        out_nodes.append(builder.node_of(v))
    builder.graph.output(tuple(out_nodes))
    gm = fx.GraphModule(builder.root, builder.graph, class_name=_safe_name(model.name).title().replace("_", ""))
    gm.tfjs_model = model.name
    gm.input_names = tuple(in_names)
    gm.output_names = tuple(out_refs)
    gm.batch_free = batch_free
    gm.batch_breaks = tuple(dict.fromkeys(builder.breaks))
    gm.eval()
    return gm


def _evaluate(model: TfjsModel, nodes: dict[str, _Node], order: list[str], placeholders: dict[str, Value],
              builder: _Builder, shapes: dict[str, Sequence[int]]) -> dict[tuple[str, int], Value]:
    values: dict[tuple[str, int], Value] = {}
    for name in order:
        node = nodes[name]
        builder.current = node
        if name in placeholders:
            values[(name, 0)] = placeholders[name]
            continue
        if node.op == "Const":
            if name not in model.weights:
                raise node.fail("no weight of this name in the weights manifest")
            values[(name, 0)] = Value(torch.from_numpy(np.array(model.weights[name])))
            continue
        if node.op == "Placeholder":  # an input upstream of a cut input: its example only
            values[(name, 0)] = Value(_placeholder_example(model, node, shapes))
            continue
        ins = []
        for ref in node.inputs:
            key = _split_ref(ref)
            if key not in values:
                raise node.fail(f"input {ref!r} has no value")
            ins.append(values[key])
        try:
            outs = CONVERTERS[node.op](builder, node, ins)
        except TfjsGraphError:
            raise
        except (RuntimeError, ValueError, IndexError, TypeError) as exc:
            raise node.fail(f"conversion failed on inputs {[list(v.shape) for v in ins]}: {exc}") from exc
        for k, v in enumerate(outs):
            values[(name, k)] = v
    builder.current = None
    return values


def load_graph_model(path: str | Path, *, outputs: Sequence[str] | None = None, inputs: Sequence[str] | None = None,
                     input_shapes: dict[str, Sequence[int]] | None = None) -> fx.GraphModule:
    """Read a TF.js graph model and convert it to a ``torch.fx.GraphModule`` (eval mode, float32, CPU).

    ``path``: the model.json (weight shards beside it). ``outputs``: tensor names (``node`` or ``node:k``) to
    return, in order; default the signature's outputs. ``inputs``: node names that become the forward's
    arguments, in order (default the graph's Placeholders); a non-Placeholder node cuts off everything upstream
    of it (its build-time shape comes from evaluating the graph on a zero input). ``input_shapes``: Placeholder
    name -> full shape, for unknown dimensions or another spatial size.

    The forward takes tensors in TF layout (NHWC images) and returns a tuple in TF layout. Attributes:
    ``input_names``, ``output_names``, ``batch_free``, ``batch_breaks``, ``tfjs_model``.
    """
    return build_graph_module(read_model(path), outputs=outputs, inputs=inputs, input_shapes=input_shapes)
