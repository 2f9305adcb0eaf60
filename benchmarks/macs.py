"""Multiply-accumulate (MAC) counting with forward hooks.

The convention (that of the reference model statistics, ``conv_linear_macs``, measured on the released code):
every ``nn.Conv1d/2d/3d``, ``nn.ConvTranspose1d/2d/3d`` and ``nn.Linear`` that actually runs during one
forward pass of a batch-1 input contributes ``weight.numel() * prod(output spatial size)`` (a linear layer:
``weight.numel() * prod(output leading dims)``); biases, BatchNorm, activations, upsampling and additions
are not counted. A module that runs twice counts twice; a module that never runs counts nothing.
What the papers call "FLOPs" are these MACs (HRNet divides by 2**30, see ``GMAC_2p30``).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_TRANSPOSED = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


class InvalidInputSizeError(ValueError):
    """The input size given to :func:`count_macs` is not a pair of positive ints."""


def _module_macs(module: nn.Module, inputs: tuple, output: torch.Tensor) -> int:
    if isinstance(module, _CONVS):
        # output (1, C_out, *spatial): each output position uses every weight once per group slice;
        # weight.numel() already equals C_out * C_in/groups * prod(kernel).
        spatial = output.shape[2:]
        return module.weight.numel() * math.prod(spatial)
    if isinstance(module, _TRANSPOSED):
        # model_stats.json's rule is weight.numel() * H_out * W_out for transposed convs too, so we follow it to
        # stay comparable. (The arithmetic a transposed conv really does is weight.numel() per INPUT position,
        # i.e. stride**2 times fewer; none of the COCO HRNet/MSPN/RSN models here has one.)
        spatial = output.shape[2:]
        return module.weight.numel() * math.prod(spatial)
    if isinstance(module, nn.Linear):
        # output (1, ..., out_features): one weight matrix product per leading position.
        return module.weight.numel() * math.prod(output.shape[:-1])
    return 0


def count_macs(model: nn.Module, input_size: tuple[int, int], *, in_channels: int = 3) -> int:
    """Conv / transposed-conv / linear MACs of one forward pass of ``model`` on a batch-1 input.

    Args:
        model: any ``nn.Module`` whose ``forward(x)`` takes ``x (1, in_channels, H, W) float32``.
        input_size: ``(H, W)`` input crop size in pixels (e.g. ``(256, 192)``).
        in_channels: channels of the input tensor (3 for an RGB/BGR crop).

    Returns:
        the number of multiply-accumulates (int). The model is left untouched (its training flag is restored,
        the hooks removed); the input is zeros, so the count does not depend on weights or data.
    """
    if (
        len(tuple(input_size)) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in input_size)
    ):
        raise InvalidInputSizeError(f"count_macs: input_size must be (H, W) positive ints, got {input_size!r}")
    try:
        param = next(model.parameters())
        device, dtype = param.device, param.dtype
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32
    total = 0

    def hook(module: nn.Module, inputs: tuple, output) -> None:
        nonlocal total
        total += _module_macs(module, inputs, output)

    handles = [
        m.register_forward_hook(hook) for m in model.modules() if isinstance(m, _CONVS + _TRANSPOSED + (nn.Linear,))
    ]
    was_training = model.training
    try:
        model.eval()
        with torch.inference_mode():
            model(torch.zeros(1, in_channels, *input_size, device=device, dtype=dtype))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return int(total)


def count_params(model: nn.Module) -> int:
    """Sum of ``numel()`` over ``model.parameters()`` (the ``params`` convention of model_stats.json)."""
    return int(sum(p.numel() for p in model.parameters()))
