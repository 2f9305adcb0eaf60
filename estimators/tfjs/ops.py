"""TensorFlow op semantics in torch: the modules and functions a converted TF.js graph calls.

Every function here is a ``torch.fx`` call target of the graphs built by :mod:`estimators.tfjs.graph`, so they
are plain module-level functions of tensors and Python values. Spatial tensors flow through the converted graph
as NCHW (the logical TF tensor is NHWC); the converter maps axes. The TF definitions restated here:

- SAME padding (``tensorflow/core/framework/kernel_shape_util.cc``, ``GetWindowedOutputSizeVerbose``): output
  ``ceil(in / stride)``, total padding ``max((out - 1) * stride + (k - 1) * dilation + 1 - in, 0)``, of which
  ``total // 2`` goes on the top/left and the rest (one more when odd) on the bottom/right.
- ResizeBilinear (TF ``image_resizer_state.h`` / tfjs-backend-cpu ``ResizeBilinear``): scale = in/out, or
  (in-1)/(out-1) with ``align_corners`` and out > 1; source coordinate ``scale * (o + 0.5) - 0.5`` with
  ``half_pixel_centers`` else ``scale * o``; rows ``max(floor(src), 0)`` and ``min(ceil(src), in - 1)``, weight
  ``src - max(floor(src), 0)``; interpolate along columns first, then rows.
- Depthwise convolution with multiplier ``m``: filter ``[kh, kw, C, m]``, output channel ``c * m + j``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "TfConv2d", "TfResizeBilinear", "conv_weight", "depthwise_weight", "same_padding", "resize_bilinear_table",
]


# ----------------------------------------------------------------------------------------------------------------
# padding and tables (build time, pure Python / numpy-free)

def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TF SAME padding of one spatial axis: (before, after) px; the odd extra pixel goes after."""
    effective = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


def resize_bilinear_table(in_size: int, out_size: int, align_corners: bool, half_pixel_centers: bool):
    """Per output index along one axis: (lower source index, upper source index, weight of the upper)."""
    if align_corners and out_size > 1:
        scale = (in_size - 1) / (out_size - 1)
    else:
        scale = in_size / out_size
    lower, upper, frac = [], [], []
    for o in range(out_size):
        src = scale * (o + 0.5) - 0.5 if half_pixel_centers else scale * o
        lo = max(math.floor(src), 0)
        lower.append(lo)
        upper.append(min(math.ceil(src), in_size - 1))
        frac.append(src - lo)
    return lower, upper, frac


def conv_weight(filt: torch.Tensor) -> torch.Tensor:
    """TF Conv2D filter [kh, kw, in, out] -> torch [out, in, kh, kw]."""
    return filt.permute(3, 2, 0, 1).contiguous()


def depthwise_weight(filt: torch.Tensor) -> torch.Tensor:
    """TF depthwise filter [kh, kw, C, m] -> torch grouped-conv weight [C * m, 1, kh, kw] (channel c*m + j)."""
    kh, kw, c, m = filt.shape
    return filt.reshape(kh, kw, c * m).permute(2, 0, 1).unsqueeze(1).contiguous()


# ----------------------------------------------------------------------------------------------------------------
# modules

ACTIVATIONS = ("Relu", "Relu6", "Elu", "LeakyRelu", "Sigmoid", "Tanh", "Prelu")


def activate(x: torch.Tensor, kind: str | None, alpha: float = 0.2, prelu: torch.Tensor | None = None):
    if kind is None:
        return x
    if kind == "Relu":
        return F.relu(x)
    if kind == "Relu6":
        return F.hardtanh(x, 0.0, 6.0)
    if kind == "Elu":
        return F.elu(x)
    if kind == "LeakyRelu":
        return F.leaky_relu(x, alpha)
    if kind == "Sigmoid":
        return torch.sigmoid(x)
    if kind == "Tanh":
        return torch.tanh(x)
    if kind == "Prelu":
        return torch.where(x >= 0, x, x * prelu)
    raise ValueError(f"unknown activation {kind!r}")


# activation -> (oneDNN post-op name, its scalars) for the fused CPU inference path of TfConv2d
_MKLDNN_POINTWISE: dict[str | None, tuple[str, tuple[float, ...]]] = {
    None: ("none", ()), "Relu": ("relu", ()), "Relu6": ("hardtanh", (0.0, 6.0)),
}
_HAS_MKLDNN_POINTWISE = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")


def _zero_pad_inference(x: torch.Tensor, pad: tuple[int, int, int, int]) -> torch.Tensor:
    """``F.pad(x, pad)`` (left, right, top, bottom; NCHW) for inference: zeroes only the border strips instead of
    the whole output, and keeps x's memory format (channels_last stays channels_last)."""
    left, right, top, bottom = pad
    n, c, h, w = x.shape
    fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    out = torch.empty((n, c, h + top + bottom, w + left + right), dtype=x.dtype, device=x.device,
                      memory_format=fmt)
    out[:, :, :top].zero_()
    out[:, :, top + h:].zero_()
    out[:, :, top:top + h, :left].zero_()
    out[:, :, top:top + h, left + w:].zero_()
    out[:, :, top:top + h, left:left + w].copy_(x)
    return out


class TfConv2d(nn.Module):
    """A TF convolution (plain, grouped or depthwise) on NCHW input, with TF padding, bias and activation fused.

    ``pad``: (left, right, top, bottom) px; the symmetric part goes to the conv, the remainder to ``F.pad``.
    ``activation``: one of :data:`ACTIVATIONS` or None; ``alpha`` for LeakyRelu; ``prelu`` (C,) for Prelu.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, stride: tuple[int, int],
                 dilation: tuple[int, int], pad: tuple[int, int, int, int], groups: int,
                 activation: str | None = None, alpha: float = 0.2, prelu: torch.Tensor | None = None):
        super().__init__()
        out_ch, in_per_group, kh, kw = weight.shape
        left, right, top, bottom = pad
        sym_h, sym_w = min(top, bottom), min(left, right)
        self.extra = (left - sym_w, right - sym_w, top - sym_h, bottom - sym_h)
        self.conv = nn.Conv2d(in_per_group * groups, out_ch, (kh, kw), stride=stride, padding=(sym_h, sym_w),
                              dilation=dilation, groups=groups, bias=bias is not None)
        with torch.no_grad():
            self.conv.weight.copy_(weight)
            if bias is not None:
                self.conv.bias.copy_(bias)
        self.activation = activation
        self.alpha = float(alpha)
        if prelu is not None:
            self.register_buffer("prelu", prelu.reshape(-1, 1, 1).clone())
        else:
            self.prelu = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() or torch.jit.is_tracing() or torch.compiler.is_compiling():
            if any(self.extra):
                x = F.pad(x, self.extra)
            return activate(self.conv(x), self.activation, self.alpha, self.prelu)
        if any(self.extra):
            x = _zero_pad_inference(x, self.extra)
        # inference (no_grad / inference_mode): no autograd history, so the fresh conv output may be overwritten
        fused = _MKLDNN_POINTWISE.get(self.activation)
        if fused is not None and x.device.type == "cpu" and x.dtype == torch.float32 and _HAS_MKLDNN_POINTWISE \
                and x.is_contiguous(memory_format=torch.channels_last):
            # one oneDNN primitive for conv + bias + activation (the activation applied in cache, not as a
            # second pass over the whole output)
            c = self.conv
            return torch.ops.mkldnn._convolution_pointwise(x, c.weight, c.bias, c.padding, c.stride, c.dilation,
                                                          c.groups, fused[0], list(fused[1]), "")
        y = self.conv(x)
        if self.activation == "Relu6":
            return F.hardtanh_(y, 0.0, 6.0)
        if self.activation == "Relu":
            return F.relu_(y)
        return activate(y, self.activation, self.alpha, self.prelu)

    def extra_repr(self) -> str:
        return f"extra_pad={self.extra}, activation={self.activation}"


class TfResizeBilinear(nn.Module):
    """TF ResizeBilinear (all three coordinate modes) on NCHW float input, to a fixed output size."""

    def __init__(self, in_hw: tuple[int, int], out_hw: tuple[int, int], align_corners: bool,
                 half_pixel_centers: bool):
        super().__init__()
        (y0, y1, fy), (x0, x1, fx) = (resize_bilinear_table(i, o, align_corners, half_pixel_centers)
                                      for i, o in zip(in_hw, out_hw))
        self.register_buffer("y0", torch.tensor(y0, dtype=torch.long))
        self.register_buffer("y1", torch.tensor(y1, dtype=torch.long))
        self.register_buffer("fy", torch.tensor(fy, dtype=torch.float32).reshape(-1, 1))
        self.register_buffer("x0", torch.tensor(x0, dtype=torch.long))
        self.register_buffer("x1", torch.tensor(x1, dtype=torch.long))
        self.register_buffer("fx", torch.tensor(fx, dtype=torch.float32))
        self.out_hw = tuple(out_hw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left = x.index_select(3, self.x0)
        right = x.index_select(3, self.x1)
        cols = left + (right - left) * self.fx.to(x.dtype)
        top = cols.index_select(2, self.y0)
        bottom = cols.index_select(2, self.y1)
        out = top + (bottom - top) * self.fy.to(x.dtype)
        if x.is_contiguous(memory_format=torch.channels_last):  # keep the convolutions that follow channels_last
            out = out.contiguous(memory_format=torch.channels_last)
        return out

    def extra_repr(self) -> str:
        return f"out_hw={self.out_hw}"


# ----------------------------------------------------------------------------------------------------------------
# functions (fx call targets)

def to_nchw(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 3, 1, 2)


def to_nhwc(x: torch.Tensor) -> torch.Tensor:
    return x.permute(0, 2, 3, 1)


def max_pool(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
             pad: tuple[int, int, int, int]) -> torch.Tensor:
    """TF MaxPool on NCHW; padded pixels never win (-inf)."""
    if any(pad):
        x = F.pad(x, pad, value=-math.inf)
    return F.max_pool2d(x, kernel, stride)


def avg_pool(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
             pad: tuple[int, int, int, int]) -> torch.Tensor:
    """TF AvgPool on NCHW: the mean over the window's valid (unpadded) pixels only."""
    if any(pad):
        ones = torch.ones_like(x[:1, :1])
        total = F.avg_pool2d(F.pad(x, pad), kernel, stride, divisor_override=1)
        count = F.avg_pool2d(F.pad(ones, pad), kernel, stride, divisor_override=1)
        return total / count
    return F.avg_pool2d(x, kernel, stride)


def depth_to_space(x: torch.Tensor, block: int) -> torch.Tensor:
    """TF DepthToSpace (NHWC, DCR order) on NCHW: out[h*bs + i, w*bs + j, c] = in[h, w, (i*bs + j) * C' + c]."""
    n, c, h, w = x.shape
    out_c = c // (block * block)
    x = x.reshape(n, block, block, out_c, h, w).permute(0, 3, 4, 1, 5, 2)
    return x.reshape(n, out_c, h * block, w * block)


def cast(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if dtype == torch.bool:
        return x != 0
    if not dtype.is_floating_point and x.dtype.is_floating_point:
        return x.trunc().to(dtype)
    return x.to(dtype)


def floor_div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.div(a, b, rounding_mode="floor")


def floor_mod(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """TF FloorMod: the remainder with the sign of the divisor."""
    return torch.remainder(a, b)


def squared_difference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    d = a - b
    return d * d


def real_div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.div(a, b)


def reshape(x: torch.Tensor, shape: list[int], keep_batch: bool) -> torch.Tensor:
    """Reshape; with ``keep_batch`` the leading dim is the input's (a batch of any size)."""
    if keep_batch:
        return x.reshape(x.shape[0], *shape[1:])
    return x.reshape(shape)


def pack(xs: list[torch.Tensor], axis: int) -> torch.Tensor:
    return torch.stack(xs, axis)


def unpack(x: torch.Tensor, axis: int) -> tuple[torch.Tensor, ...]:
    return tuple(torch.unbind(x, axis))


def concat(xs: list[torch.Tensor], axis: int) -> torch.Tensor:
    return torch.cat(xs, axis)


def expand_dims(x: torch.Tensor, axis: int) -> torch.Tensor:
    return x.unsqueeze(axis)


def squeeze(x: torch.Tensor, axes: list[int]) -> torch.Tensor:
    if not axes:
        return x.squeeze()
    for a in sorted((a % x.dim() for a in axes), reverse=True):
        x = x.squeeze(a)
    return x


def arg_max(x: torch.Tensor, axis: int, dtype: torch.dtype) -> torch.Tensor:
    """TF ArgMax: the first index of the maximum."""
    return torch.argmax(x, axis).to(dtype)


def gather_nd(params: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """TF GatherNd: out[i...] = params[indices[i..., 0], ..., indices[i..., k-1], ...]."""
    idx = indices.long()
    return params[tuple(idx[..., j] for j in range(idx.shape[-1]))]


def gather_v2(params: torch.Tensor, indices: torch.Tensor, axis: int, batch_dims: int) -> torch.Tensor:
    if batch_dims != 0:
        raise ValueError("GatherV2 with batch_dims != 0 is not supported")
    idx = indices.long()
    out = params.index_select(axis, idx.reshape(-1))
    return out.reshape(*params.shape[:axis], *idx.shape, *params.shape[axis + 1:])


def top_k(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """TF TopKV2 (sorted): values and int32 indices along the last axis; ties keep the lower index first."""
    order = torch.sort(x, dim=-1, descending=True, stable=True)
    return order.values[..., :k], order.indices[..., :k].to(torch.int32)


def tf_mean(x: torch.Tensor, axes: list[int], keep_dims: bool) -> torch.Tensor:
    return x.mean(dim=axes, keepdim=keep_dims) if axes else x


def tf_sum(x: torch.Tensor, axes: list[int], keep_dims: bool) -> torch.Tensor:
    return x.sum(dim=axes, keepdim=keep_dims) if axes else x


def tf_max(x: torch.Tensor, axes: list[int], keep_dims: bool) -> torch.Tensor:
    return x.amax(dim=axes, keepdim=keep_dims) if axes else x


def tf_min(x: torch.Tensor, axes: list[int], keep_dims: bool) -> torch.Tensor:
    return x.amin(dim=axes, keepdim=keep_dims) if axes else x


def pad_constant(x: torch.Tensor, pads: list[int], value: float) -> torch.Tensor:
    """``pads`` in F.pad order (last axis first)."""
    return F.pad(x, pads, value=value)


def transpose(x: torch.Tensor, perm: list[int]) -> torch.Tensor:
    return x.permute(*perm)


def tile(x: torch.Tensor, reps: list[int]) -> torch.Tensor:
    return x.repeat(*reps)


def split_sizes(x: torch.Tensor, sizes: list[int], axis: int) -> tuple[torch.Tensor, ...]:
    return tuple(torch.split(x, sizes, axis))


def select(cond: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    if cond.dim() == 1 and a.dim() > 1:  # TF Select: a vector condition picks rows
        cond = cond.reshape(-1, *([1] * (a.dim() - 1)))
    return torch.where(cond, a, b)


def shape_of(x: torch.Tensor) -> torch.Tensor:
    return torch.tensor(x.shape, dtype=torch.int32, device=x.device)


def size_of(x: torch.Tensor) -> torch.Tensor:
    return torch.tensor(x.numel(), dtype=torch.int32, device=x.device)


def tf_range(start: torch.Tensor, limit: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    dtype = torch.promote_types(torch.promote_types(start.dtype, limit.dtype), delta.dtype)
    return torch.arange(start.item(), limit.item(), delta.item(), dtype=dtype, device=start.device)


def fill(dims: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    return torch.full([int(d) for d in dims.tolist()], value.item(), dtype=value.dtype, device=value.device)


def strided_slice(x: torch.Tensor, spec: list[tuple]) -> torch.Tensor:
    """Apply a resolved StridedSlice spec: per item ('slice', begin, end, step) / ('index', i) / ('new',) /
    ('all',) for an ellipsis-expanded full axis. Negative steps are handled with flip."""
    out = x
    dim = 0
    for item in spec:
        kind = item[0]
        if kind == "new":
            out = out.unsqueeze(dim)
            dim += 1
        elif kind == "index":
            out = out.select(dim, item[1])
        elif kind == "all":
            dim += 1
        else:
            _, begin, end, step = item
            if step > 0:
                out = out.narrow(dim, begin, max(end - begin, 0))
                if step > 1:
                    out = out[(slice(None),) * dim + (slice(None, None, step),)]
            else:
                # begin..end (exclusive) going down: the elements begin, begin+step, ... > end
                idx = list(range(begin, end, step))
                out = out.index_select(dim, torch.tensor(idx, dtype=torch.long, device=out.device))
            dim += 1
    return out


def sparse_to_dense(indices: torch.Tensor, shape: torch.Tensor, values: torch.Tensor,
                    default: torch.Tensor) -> torch.Tensor:
    dims = [int(d) for d in shape.reshape(-1).tolist()]
    out = torch.full(dims, default.item(), dtype=values.dtype, device=values.device)
    idx = indices.long().reshape(-1, len(dims)) if indices.dim() > 0 else indices.long().reshape(1, 1)
    vals = values.reshape(-1).expand(idx.shape[0]) if values.numel() == 1 else values.reshape(-1)
    out[tuple(idx[:, j] for j in range(idx.shape[1]))] = vals
    return out


def broadcast_nchw(x: torch.Tensor) -> torch.Tensor:
    """A logical NHWC-broadcastable tensor of rank <= 4 -> its NCHW-broadcastable form."""
    if x.dim() < 4:
        x = x.reshape(*([1] * (4 - x.dim())), *x.shape)
    return x.permute(0, 3, 1, 2)


def prelu(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    return torch.where(x >= 0, x, x * alpha)


def relu6(x: torch.Tensor) -> torch.Tensor:
    return F.hardtanh(x, 0.0, 6.0)


def leaky_relu(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return F.leaky_relu(x, alpha)


def reciprocal(x: torch.Tensor) -> torch.Tensor:
    return 1.0 / x


def rsqrt(x: torch.Tensor) -> torch.Tensor:
    return torch.rsqrt(x)


def square(x: torch.Tensor) -> torch.Tensor:
    return x * x


def div_tf(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """TF Div: true division for floats, truncation toward zero for integers."""
    if a.dtype.is_floating_point:
        return a / b
    return torch.div(a, b, rounding_mode="trunc")


def logical_and(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.logical_and(a, b)


def logical_or(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.logical_or(a, b)


def logical_not(a: torch.Tensor) -> torch.Tensor:
    return torch.logical_not(a)


def batch_norm_tf(x, scale, offset, mean, variance, epsilon: float):
    """TF FusedBatchNorm (inference): (x - mean) * rsqrt(variance + epsilon) * scale + offset."""
    return (x - mean) * torch.rsqrt(variance + epsilon) * scale + offset
