"""TF op semantics of estimators.tfjs.ops against numpy restatements of TensorFlow's definitions (small, fast)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from estimators.tfjs import ops


def _same_pads_np(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TF SAME (kernel_shape_util.cc): out = ceil(in / s); pad = max((out-1)*s + (k-1)*d + 1 - in, 0);
    before = pad // 2, after = pad - before."""
    out = math.ceil(size / s)
    pad = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return pad // 2, pad - pad // 2


def _conv_np(x, w, stride, dil, pads, depthwise=False):
    """NHWC conv by its definition: y[b,i,j,o] = sum x_pad[b, i*s + a*d, j*s + c*d, ch] * w[a, c, ch, o]
    (depthwise: output channel ch*m + j uses x channel ch and w[a, c, ch, j])."""
    (pt, pb), (pl, pr) = pads
    xp = np.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
    kh, kw, cin, m = w.shape
    oh = (xp.shape[1] - (kh - 1) * dil[0] - 1) // stride[0] + 1
    ow = (xp.shape[2] - (kw - 1) * dil[1] - 1) // stride[1] + 1
    out_ch = cin * m if depthwise else m
    y = np.zeros((x.shape[0], oh, ow, out_ch))
    for i in range(oh):
        for j in range(ow):
            win = xp[:, i * stride[0]: i * stride[0] + (kh - 1) * dil[0] + 1: dil[0],
                     j * stride[1]: j * stride[1] + (kw - 1) * dil[1] + 1: dil[1], :]
            if depthwise:
                y[:, i, j, :] = np.einsum("bhwc,hwcm->bcm", win, w).reshape(x.shape[0], -1)
            else:
                y[:, i, j, :] = np.einsum("bhwc,hwco->bo", win, w)
    return y


@pytest.mark.parametrize("size,k,s,d", [(256, 3, 2, 1), (7, 3, 2, 1), (8, 3, 2, 1), (9, 5, 2, 1), (10, 3, 1, 2),
                                        (5, 1, 2, 1), (6, 4, 3, 1), (3, 7, 1, 1)])
def test_same_padding_matches_tf_definition(size, k, s, d):
    assert ops.same_padding(size, k, s, d) == _same_pads_np(size, k, s, d)


def test_same_padding_puts_the_odd_pixel_after():
    assert ops.same_padding(256, 3, 2) == (0, 1)  # MobileNet stem: all the padding on the bottom/right
    assert ops.same_padding(7, 3, 2) == (1, 1)
    assert ops.same_padding(8, 4, 1) == (1, 2)


@pytest.mark.parametrize("hw,k,stride,dil,depthwise,mult", [
    ((8, 9), (3, 3), (2, 2), (1, 1), False, 5),
    ((7, 7), (3, 3), (2, 2), (1, 1), True, 1),
    ((6, 5), (3, 3), (1, 1), (2, 2), True, 2),   # dilation + depth multiplier 2
    ((9, 8), (5, 3), (2, 1), (1, 1), True, 3),
    ((5, 6), (1, 1), (2, 2), (1, 1), False, 4),
])
def test_conv_same_padding_against_numpy(hw, k, stride, dil, depthwise, mult):
    rng = np.random.default_rng(1)
    cin = 3
    x = rng.normal(size=(2, *hw, cin))
    w = rng.normal(size=(*k, cin, mult))
    bias = rng.normal(size=(cin * mult if depthwise else mult,))
    pads = (_same_pads_np(hw[0], k[0], stride[0], dil[0]), _same_pads_np(hw[1], k[1], stride[1], dil[1]))
    ref = _conv_np(x, w, stride, dil, pads, depthwise) + bias
    wt = torch.from_numpy(w).float()
    weight = ops.depthwise_weight(wt) if depthwise else ops.conv_weight(wt)
    (pt, pb), (pl, pr) = pads
    module = ops.TfConv2d(weight, torch.from_numpy(bias).float(), stride, dil, (pl, pr, pt, pb),
                          cin if depthwise else 1, activation="Relu6")
    with torch.no_grad():
        out = module(torch.from_numpy(x).float().permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(out, np.clip(ref, 0, 6), atol=1e-5)


def _resize_np(x, out_hw, align_corners, half_pixel):
    """TF ResizeBilinear by its definition (NHWC, one output pixel at a time)."""
    n, ih, iw, c = x.shape
    oh, ow = out_hw

    def scale(i, o):
        return (i - 1) / (o - 1) if align_corners and o > 1 else i / o

    sy, sx = scale(ih, oh), scale(iw, ow)
    y = np.zeros((n, oh, ow, c))
    for r in range(oh):
        fy = sy * (r + 0.5) - 0.5 if half_pixel else sy * r
        y0, y1 = max(math.floor(fy), 0), min(math.ceil(fy), ih - 1)
        wy = fy - y0
        for q in range(ow):
            fx = sx * (q + 0.5) - 0.5 if half_pixel else sx * q
            x0, x1 = max(math.floor(fx), 0), min(math.ceil(fx), iw - 1)
            wx = fx - x0
            top = x[:, y0, x0] + (x[:, y0, x1] - x[:, y0, x0]) * wx
            bottom = x[:, y1, x0] + (x[:, y1, x1] - x[:, y1, x0]) * wx
            y[:, r, q] = top + (bottom - top) * wy
    return y


@pytest.mark.parametrize("align_corners,half_pixel", [(False, True), (True, False), (False, False)])
@pytest.mark.parametrize("in_hw,out_hw", [((4, 5), (8, 10)), ((8, 8), (3, 5)), ((5, 3), (5, 7)), ((3, 3), (1, 1))])
def test_resize_bilinear_three_modes_against_numpy(align_corners, half_pixel, in_hw, out_hw):
    x = np.random.default_rng(2).normal(size=(2, *in_hw, 3))
    module = ops.TfResizeBilinear(in_hw, out_hw, align_corners, half_pixel)
    out = module(torch.from_numpy(x).float().permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(out, _resize_np(x, out_hw, align_corners, half_pixel), atol=1e-5)


def test_resize_modes_agree_with_torch_where_defined_alike():
    """half_pixel_centers == torch's align_corners=False, align_corners == torch's align_corners=True."""
    x = torch.randn(1, 4, 6, 7)
    for ac, hp in ((False, True), (True, False)):
        ours = ops.TfResizeBilinear((6, 7), (13, 11), ac, hp)(x)
        ref = F.interpolate(x, size=(13, 11), mode="bilinear", align_corners=ac)
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


def test_max_pool_same_never_picks_padding():
    x = -torch.rand(1, 2, 5, 5) - 1.0  # all negative: a zero pad would win at the borders
    top, bottom = ops.same_padding(5, 3, 2)
    out = ops.max_pool(x, (3, 3), (2, 2), (top, bottom, top, bottom))
    xn = x.numpy()
    ref = np.full((1, 2, 3, 3), -np.inf)
    for i in range(3):
        for j in range(3):
            ys = slice(max(2 * i - top, 0), min(2 * i - top + 3, 5))
            xs = slice(max(2 * j - top, 0), min(2 * j - top + 3, 5))
            ref[:, :, i, j] = xn[:, :, ys, xs].max(axis=(2, 3))
    np.testing.assert_allclose(out.numpy(), ref)
    assert (out < 0).all()


def test_integer_ops_follow_tf():
    a = torch.tensor([7, -7, 7, -7], dtype=torch.int32)
    b = torch.tensor([2, 2, -2, -2], dtype=torch.int32)
    assert ops.floor_div(a, b).tolist() == [3, -4, -4, 3]
    assert ops.floor_mod(a, b).tolist() == [1, 1, -1, -1]  # sign of the divisor
    assert ops.div_tf(a, b).tolist() == [3, -3, -3, 3]  # integer Div truncates
    assert ops.cast(torch.tensor([1.7, -1.7]), torch.int32).tolist() == [1, -1]
    assert ops.arg_max(torch.tensor([[1.0, 3.0, 3.0]]), 1, torch.int32).tolist() == [1]  # first maximum
    vals, idx = ops.top_k(torch.tensor([[1.0, 5.0, 5.0, 2.0]]), 3)
    assert vals.tolist() == [[5.0, 5.0, 2.0]] and idx.tolist() == [[1, 2, 3]] and idx.dtype == torch.int32


def test_gather_nd_definition():
    params = torch.arange(2 * 3 * 4).reshape(2, 3, 4)
    idx = torch.tensor([[[1, 2], [0, 0]]], dtype=torch.int32)  # (1, 2, 2): pairs into the first two axes
    out = ops.gather_nd(params, idx)
    assert out.shape == (1, 2, 4)
    assert out[0, 0].tolist() == params[1, 2].tolist() and out[0, 1].tolist() == params[0, 0].tolist()


def test_depth_to_space_dcr_order():
    """TF: out[b, h*bs + i, w*bs + j, c] = in[b, h, w, (i*bs + j) * C_out + c] (NHWC)."""
    bs, c_out = 2, 3
    x = np.random.default_rng(3).normal(size=(2, 3, 4, bs * bs * c_out))
    ref = np.zeros((2, 3 * bs, 4 * bs, c_out))
    for h in range(3):
        for w in range(4):
            for i in range(bs):
                for j in range(bs):
                    ref[:, h * bs + i, w * bs + j, :] = x[:, h, w, (i * bs + j) * c_out:(i * bs + j + 1) * c_out]
    out = ops.depth_to_space(torch.from_numpy(x).permute(0, 3, 1, 2), bs).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(out, ref)


@pytest.mark.parametrize("activation", [None, "Relu", "Relu6", "Sigmoid"])
@pytest.mark.parametrize("depthwise", [False, True])
def test_conv_inference_path_matches_the_autograd_path(activation, depthwise):
    """Under inference_mode a channels_last CPU input takes the fused conv+bias+activation (oneDNN) or in-place
    activation path; it must give the plain path's values and keep channels_last for the next layer."""
    gen = torch.Generator().manual_seed(3)
    c = 8
    weight = torch.randn(c, 1 if depthwise else c, 3, 3, generator=gen)
    bias = torch.randn(c, generator=gen)
    conv = ops.TfConv2d(weight, bias, (2, 2), (1, 1), (0, 1, 0, 1), c if depthwise else 1, activation)
    x = (torch.randn(2, c, 10, 10, generator=gen) * 3).contiguous(memory_format=torch.channels_last)
    assert torch.is_grad_enabled()
    reference = conv(x).detach()  # grad mode: the plain conv + a separate activation
    with torch.inference_mode():
        fast = conv(x)
    torch.testing.assert_close(fast, reference, rtol=1e-5, atol=1e-5)
    assert fast.is_contiguous(memory_format=torch.channels_last)
    assert float(reference.max()) > 0  # the check is not vacuous
