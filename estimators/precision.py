"""The option vocabularies every estimator entry point accepts: inference precisions and checkpoint formats.

No torch and nothing of the project here: configs and command lines check these values without loading a model.
"""
from __future__ import annotations

PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")
# who wrote a checkpoint file: the authors' release, MMPose 0.x, MMPose 1.x, or us (``--checkpoint-format``)
CHECKPOINT_FORMATS: tuple[str, ...] = ("official", "mmpose0x", "mmpose1x", "native")


def check_precision(precision: str, error: type[Exception] = ValueError) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else ``error`` listing them."""
    if precision not in PRECISIONS:
        raise error(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


__all__ = ["CHECKPOINT_FORMATS", "PRECISIONS", "check_precision"]
