"""Heatmap targets (encode) and keypoint decoding, per estimator family, vectorised over persons and joints.

HRNet family (HRNet, Multi-Stage HRNet), as the released HRNet code:
- :func:`encode_gaussian`: unnormalised Gaussian (peak 1, sigma 2 heatmap px) at ``int(x / stride + 0.5)``,
  truncated to a (6 sigma + 1)^2 window; target weight 0 for invisible joints and joints whose window
  misses the heatmap.
- :func:`decode_hrnet`: argmax per joint (coords zeroed where the max <= 0), then +/-0.25 heatmap px toward
  the higher neighbour along each axis (only where 1 < x < W-1 and 1 < y < H-1, the released bounds).
  Coordinates stay in heatmap pixels; map them to the image with the heatmap-size inverse affine.

MSPN / RSN family, as the released MSPN code:
- :func:`encode_mspn`: one-hot at ``floor(x * out / in)``, ``cv2.GaussianBlur(kernel, sigma=0)``, scaled so
  the peak is 255. :func:`mspn_targets` assigns the coarse-to-fine kernels (see ``MSPN_KERNELS``).
- :func:`decode_mspn`: the released test code's ``get_results`` (MSPN ``exps/*/test.py``, identical in both RSN
  repositories), step for step: each (flip-averaged) heatmap is zero-padded by ``MSPN_DECODE_BORDER`` = 10 cells
  on every side in float64, blurred with ``cv2.GaussianBlur((kernel, kernel), 0)`` (kernel 5 on COCO), the
  argmax is taken over the PADDED map, that cell is set to 0 and the second argmax taken (also over the padded
  map), the padding is removed, the position moves 0.25 cell along the unit vector toward the second maximum
  (no move when they coincide), is clipped to [0, W-1] x [0, H-1] and mapped to input pixels with
  ``x * stride + stride / 2`` (stride 4: ``x*4 + 2``). Joint score = UNBLURRED heatmap value at the rounded
  position / 255 + 0.5 (the released raw score; estimators report it calibrated, minus 0.5, see
  ``estimators.spec``). Consequences of the padding: the zero border competes with the map, so an all-negative
  (or all-zero) map decodes to cell (0, 0); a peak near the border is blurred against zeros, not mirrored; the
  second maximum may lie in the padding (then the quarter step points outside and the clip brings it back).
"""
from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

# MSPN coarse-to-fine kernels. Each stage has 4 output units ordered lowest -> highest resolution
# (1/32, 1/16, 1/8, 1/4 of the input); unit j of a non-final stage is supervised with MSPN_KERNELS[j]
# (15/11/9/7) and unit j of the final stage with MSPN_KERNELS[j + 1] (11/9/7/5): larger kernels (coarser
# targets) for lower-resolution units and for earlier stages (MSPN paper Sec. 3.3, released code).
MSPN_KERNELS = (15, 11, 9, 7, 5)
MSPN_TEST_KERNEL = 5  # post-Gaussian kernel at test time on COCO (released TEST.GAUSSIAN_KERNEL)
MSPN_DECODE_BORDER = 10  # zero padding (cells) around each heatmap before the test-time blur, as released
MSPN_SHIFT = 0.25  # released TEST.SHIFT_RATIOS: step (cells) toward the second maximum
_CV_MAX_CHANNELS = 128  # OpenCV 5's CV_CN_MAX


class CodecError(ValueError):
    """Bad input to an encoder / decoder (wrong shapes, bad kernel)."""


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch.Tensor without importing torch here
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


def _check_kp(keypoints: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    kp = np.asarray(keypoints, dtype=np.float64)
    vis = np.asarray(visible, dtype=np.float64).reshape(-1)
    if kp.ndim != 2 or kp.shape[1] != 2:
        raise CodecError(f"keypoints: expected shape (K, 2) input pixels, got {kp.shape}")
    if len(vis) != len(kp):
        raise CodecError(f"visible: expected {len(kp)} values (one per keypoint), got {len(vis)}")
    return kp, vis


# ----------------------------------------------------------------------------------------------- HRNet
def encode_gaussian(
    keypoints: np.ndarray,
    visible: np.ndarray,
    heatmap_size: Sequence[int],
    input_size: Sequence[int],
    sigma: float = 2.0,
) -> tuple[np.ndarray, np.ndarray]:
    """HRNet training target.

    keypoints: (K, 2) network-input pixels; visible: (K,) (> 0 means labelled); heatmap_size, input_size: (w, h).
    Returns heatmaps (K, h, w) float32 (peak 1 at ``int(x / stride + 0.5)``) and target_weight (K,) float32
    in {0, 1}.
    """
    kp, vis = _check_kp(keypoints, visible)
    hw, hh = int(heatmap_size[0]), int(heatmap_size[1])
    stride = np.array([input_size[0] / hw, input_size[1] / hh])
    tmp = sigma * 3
    # int() of the released code truncates toward zero; np.trunc keeps that for negative coordinates.
    mu = np.trunc(kp / stride + 0.5)
    ul = np.trunc(mu - tmp)
    br = np.trunc(mu + tmp + 1)
    inside = ~((ul[:, 0] >= hw) | (ul[:, 1] >= hh) | (br[:, 0] < 0) | (br[:, 1] < 0))
    weight = ((vis > 0) & inside).astype(np.float32)
    xs = np.arange(hw, dtype=np.float64)
    ys = np.arange(hh, dtype=np.float64)
    gx = np.exp(-((xs[None] - mu[:, :1]) ** 2) / (2 * sigma**2)) * ((xs[None] >= ul[:, :1]) & (xs[None] < br[:, :1]))
    gy = np.exp(-((ys[None] - mu[:, 1:]) ** 2) / (2 * sigma**2)) * ((ys[None] >= ul[:, 1:]) & (ys[None] < br[:, 1:]))
    heatmaps = gy[:, :, None] * gx[:, None, :] * weight[:, None, None]
    return heatmaps.astype(np.float32), weight


def decode_hrnet(heatmaps) -> tuple[np.ndarray, np.ndarray]:
    """HRNet decoding. heatmaps: (N, K, h, w) (numpy or torch).

    Returns coords (N, K, 2) float32 heatmap pixels (x, y) and maxvals (N, K) float32 (raw heatmap maxima;
    coords are (0, 0) where the maximum is <= 0, as released).
    """
    hm = _to_numpy(heatmaps).astype(np.float32, copy=False)
    if hm.ndim != 4:
        raise CodecError(f"heatmaps: expected shape (N, K, h, w), got {hm.shape}")
    n, k, h, w = hm.shape
    flat = hm.reshape(n, k, h * w)
    if h * w == 0:
        raise CodecError(f"heatmaps: empty spatial size {hm.shape}")
    idx = flat.argmax(axis=2)
    maxvals = np.take_along_axis(flat, idx[..., None], axis=2)[..., 0]
    x = (idx % w).astype(np.int64)
    y = (idx // w).astype(np.int64)
    pos = maxvals > 0
    x = np.where(pos, x, 0)
    y = np.where(pos, y, 0)
    coords = np.stack([x, y], axis=-1).astype(np.float32)
    ok = (x > 1) & (x < w - 1) & (y > 1) & (y < h - 1)

    def at(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        lin = np.clip(yy, 0, h - 1) * w + np.clip(xx, 0, w - 1)
        return np.take_along_axis(flat, lin[..., None], axis=2)[..., 0]

    dx = at(y, x + 1) - at(y, x - 1)
    dy = at(y + 1, x) - at(y - 1, x)
    offset = np.stack([np.sign(dx), np.sign(dy)], axis=-1) * 0.25
    coords += np.where(ok[..., None], offset, 0.0).astype(np.float32)
    return coords, maxvals.astype(np.float32)


# ------------------------------------------------------------------------------------------ MSPN / RSN
def _check_kernel(kernel: int) -> int:
    kernel = int(kernel)
    if kernel < 1 or kernel % 2 == 0:
        raise CodecError(f"kernel: expected an odd size >= 1, got {kernel}")
    return kernel


def gaussian_blur_maps(maps: np.ndarray, kernel: int) -> np.ndarray:
    """cv2.GaussianBlur((kernel, kernel), sigma=0, BORDER_REFLECT_101) of every map of (..., h, w) float32.

    Maps are stacked as channels (OpenCV 5 blurs up to 128 channels per call), so there is no per-map loop.
    """
    kernel = _check_kernel(kernel)
    a = np.asarray(maps, dtype=np.float32)
    lead, (h, w) = a.shape[:-2], a.shape[-2:]
    c = int(np.prod(lead)) if lead else 1
    chans = np.ascontiguousarray(a.reshape(c, h, w).transpose(1, 2, 0))
    out = np.empty_like(chans)
    for s in range(0, c, _CV_MAX_CHANNELS):
        part = cv2.GaussianBlur(np.ascontiguousarray(chans[:, :, s : s + _CV_MAX_CHANNELS]), (kernel, kernel), 0)
        out[:, :, s : s + _CV_MAX_CHANNELS] = part.reshape(h, w, -1)
    return out.transpose(2, 0, 1).reshape(a.shape)


def encode_mspn(
    keypoints: np.ndarray,
    visible: np.ndarray,
    heatmap_size: Sequence[int],
    input_size: Sequence[int],
    kernel: int,
) -> tuple[np.ndarray, np.ndarray]:
    """MSPN/RSN training target of one output unit.

    keypoints: (K, 2) network-input pixels; visible: (K,); heatmap_size, input_size: (w, h); kernel: odd
    Gaussian kernel size. Returns heatmaps (K, h, w) float32 with peak 255 at ``floor(x * w_out / w_in)``
    and target_weight (K,) float32: 1 for labelled joints whose cell lies inside the heatmap, else 0
    (their map is all zero). Like the released code this uses cv2's default BORDER_REFLECT_101, so for a
    cell closer than ``kernel // 4 + 1`` pixels to a border (4 for kernel 15, 2 for kernel 5) the mirrored
    mass moves the maximum one or more pixels toward that border; the map is still scaled so that its
    maximum is 255.
    """
    kp, vis = _check_kp(keypoints, visible)
    kernel = _check_kernel(kernel)
    hw, hh = int(heatmap_size[0]), int(heatmap_size[1])
    cell = np.floor(kp * np.array([hw / input_size[0], hh / input_size[1]])).astype(np.int64)
    inside = (cell[:, 0] >= 0) & (cell[:, 0] < hw) & (cell[:, 1] >= 0) & (cell[:, 1] < hh)
    weight = ((vis > 0) & inside).astype(np.float32)
    k = len(kp)
    onehot = np.zeros((k, hh, hw), dtype=np.float32)
    j = np.nonzero(weight)[0]
    onehot[j, cell[j, 1], cell[j, 0]] = 1.0
    if k == 0:
        return onehot, weight
    blurred = gaussian_blur_maps(onehot, kernel)
    peak = blurred.reshape(k, -1).max(axis=1)
    scale = np.where(peak > 1e-8, 255.0 / np.maximum(peak, 1e-8), 0.0).astype(np.float32)
    return blurred * scale[:, None, None], weight


def mspn_targets(
    keypoints: np.ndarray,
    visible: np.ndarray,
    input_size: Sequence[int],
    stage_is_final: bool,
    heatmap_sizes: Sequence[Sequence[int]] | None = None,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Targets of the 4 output units of one MSPN/RSN stage, lowest -> highest resolution.

    keypoints (K, 2) input px, visible (K,), input_size (w, h). Unit j gets kernel ``MSPN_KERNELS[j]``
    (non-final stage: 15/11/9/7) or ``MSPN_KERNELS[j + 1]`` (final stage: 11/9/7/5). heatmap_sizes: the 4
    (w, h) sizes of the units; default all ``input / 4``, because the released code upsamples every unit's
    prediction to the output resolution before the loss. Returns ([4 x (K, h_j, w_j) float32 peak 255],
    target_weight (K,) float32 taken from the highest-resolution unit).
    """
    if heatmap_sizes is None:
        heatmap_sizes = [(int(input_size[0]) // 4, int(input_size[1]) // 4)] * 4
    if len(heatmap_sizes) != 4:
        raise CodecError(f"heatmap_sizes: expected 4 (w, h) sizes, got {len(heatmap_sizes)}")
    first = 1 if stage_is_final else 0
    pairs = [encode_mspn(keypoints, visible, size, input_size, MSPN_KERNELS[first + j])
             for j, size in enumerate(heatmap_sizes)]
    return [hm for hm, _ in pairs], pairs[-1][1]


def decode_mspn(heatmaps, kernel: int = MSPN_TEST_KERNEL, stride: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """MSPN/RSN decoding as released (see the module docstring). heatmaps: (N, K, h, w) (numpy or torch),
    values on the 0..255 target scale (float32, as the network outputs them).

    Returns coords (N, K, 2) float64 in NETWORK-INPUT pixels (``x * stride + stride / 2``) and scores (N, K)
    float32 = unblurred value at the rounded decoded cell / 255 + 0.5. The blur runs once per map (a float64
    single-channel ``cv2.GaussianBlur`` exactly as released); the rest is vectorised over all maps.
    """
    hm = _to_numpy(heatmaps).astype(np.float32, copy=False)
    if hm.ndim != 4:
        raise CodecError(f"heatmaps: expected shape (N, K, h, w), got {hm.shape}")
    n, k, h, w = hm.shape
    if h * w == 0:
        raise CodecError(f"heatmaps: empty spatial size {hm.shape}")
    kernel = _check_kernel(kernel)
    b = MSPN_DECODE_BORDER
    maps = hm.reshape(n * k, h, w)
    pw = w + 2 * b
    padded = np.zeros((n * k, h + 2 * b, pw), dtype=np.float64)
    padded[:, b:-b, b:-b] = maps
    for i in range(n * k):  # float64 single-channel blur per map, as released (bit-exact)
        padded[i] = cv2.GaussianBlur(padded[i], (kernel, kernel), 0)
    flat = padded.reshape(n * k, -1)
    rows = np.arange(n * k)
    first = flat.argmax(axis=1)
    flat[rows, first] = 0.0
    second = flat.argmax(axis=1)
    y, x = first // pw - b, first % pw - b
    py, px = second // pw - b - y, second % pw - b - x
    ln = np.sqrt((px**2 + py**2).astype(np.float64))
    move = ln > 1e-3
    safe = np.where(move, ln, 1.0)
    xf = np.where(move, x + MSPN_SHIFT * px / safe, x.astype(np.float64))
    yf = np.where(move, y + MSPN_SHIFT * py / safe, y.astype(np.float64))
    xf = np.maximum(0.0, np.minimum(xf, w - 1))
    yf = np.maximum(0.0, np.minimum(yf, h - 1))
    coords = np.stack([xf * stride + stride / 2.0, yf * stride + stride / 2.0], axis=-1).reshape(n, k, 2)
    ri = np.rint(yf).astype(np.int64)
    ci = np.rint(xf).astype(np.int64)
    scores = maps[rows, ri, ci] / np.float32(255) + np.float32(0.5)
    return coords, scores.reshape(n, k).astype(np.float32)


__all__ = [
    "CodecError",
    "MSPN_DECODE_BORDER",
    "MSPN_KERNELS",
    "MSPN_SHIFT",
    "MSPN_TEST_KERNEL",
    "decode_hrnet",
    "decode_mspn",
    "encode_gaussian",
    "encode_mspn",
    "gaussian_blur_maps",
    "mspn_targets",
]
