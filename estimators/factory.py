"""The estimator factory: a registered name (+ checkpoint) -> a network or a ready estimator.

Everything model-specific comes from the name's :class:`estimators.spec.ModelSpec` (builder, family, input
size, keypoint layout); a checkpoint that declares its own keypoint layout (MMPose 1.x ``dataset_meta``, or
ours) overrides the spec's, so a PoseTrack-18 model flips with the PoseTrack-18 pairs.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .precision import check_precision
from .registry import get_spec
from .spec import TOPDOWN, SpecError


class MissingWeightsError(ValueError):
    """A model without embedded weights was asked for without a checkpoint."""


def build_model(name: str, **model_kwargs: Any):
    """The network of the top-down model ``name`` (random weights; see ``list_models()``), built with the
    builder's keyword arguments (e.g. ``num_keypoints``)."""
    spec = get_spec(name)
    if spec.kind != TOPDOWN:
        raise SpecError(f"estimator {name!r} is a {spec.kind!r} model, not a network: use create_estimator")
    return spec.builder(**model_kwargs)


def create_estimator(
    name: str,
    checkpoint: str | Path | None = None,
    checkpoint_format: str | None = None,
    *,
    input_size: Sequence[int] | None = None,
    device: str = "cpu",
    precision: str = "fp32",
    flip_test: bool = True,
    max_batch: int = 32,
    optimize: bool | None = None,
    random_weights: bool = False,
    **model_kwargs: Any,
):
    """A ready estimator (the estimator contract: ``spec``, ``layout``, ``estimate``, ``estimate_batch``).

    name: a registered name. checkpoint: weights file; checkpoint_format: "official" | "mmpose0x" |
    "mmpose1x" | "native", None = guessed from the file's keys. A top-down model needs a checkpoint unless
    ``random_weights`` (benchmarks only): without one this raises :class:`MissingWeightsError` before any
    network is built. input_size: (w, h), default the spec's. optimize: use the BatchNorm-folded
    channels-last forward (``estimators.optimize``, same outputs within 1e-6, faster on CPU); None = on for CPU
    fp32/bf16, off otherwise. Other kinds of model (``spec.kind != "topdown"``) get ``checkpoint``, ``device``,
    ``max_batch`` and ``model_kwargs`` through their spec's builder; MoveNet (kind "movenet") also gets
    ``precision`` and ``flip_test``.
    """
    spec = get_spec(name)
    check_precision(precision)
    if checkpoint is None and not spec.embedded_weights and not random_weights:
        raise MissingWeightsError(
            f"estimator {name!r} has no embedded weights: give --checkpoint FILE (config estimator.checkpoint; "
            f"or estimator.random_weights=true for benchmarks)")
    if spec.kind != TOPDOWN:
        if not spec.embedded_weights:  # such a builder decides itself whether random weights are allowed
            model_kwargs["random_weights"] = random_weights
        if spec.kind == "movenet":  # a crop model like the top-down ones: the same precision and flip test
            model_kwargs.update(precision=precision, flip_test=flip_test)
        return spec.builder(checkpoint, device=device, max_batch=max_batch, **model_kwargs)
    from . import checkpoints as ckpt
    from .topdown import TopDownEstimator

    obj = layout = None
    if checkpoint is not None:
        obj = ckpt.read_checkpoint_file(checkpoint)  # a missing or unreadable file fails before any build
        layout = ckpt.checkpoint_layout(obj, str(checkpoint))
        if layout is not None and layout.num_keypoints != spec.layout.num_keypoints:
            model_kwargs.setdefault("num_keypoints", layout.num_keypoints)
    model = spec.builder(**model_kwargs)
    if obj is not None:
        _, layout = ckpt.load_weights_object(model, obj, str(checkpoint), checkpoint_format)
    if layout is None and int(model.num_keypoints) != spec.layout.num_keypoints:
        raise SpecError(f"estimator {name!r} built with {int(model.num_keypoints)} keypoints, but neither its spec "
                        f"(layout {spec.layout.name!r}) nor the checkpoint gives a layout of that size")
    est = TopDownEstimator(model, spec, layout=layout, input_size=input_size, device=device, precision=precision,
                           flip_test=flip_test, max_batch=max_batch)
    if optimize is None:
        optimize = str(device).split(":")[0] == "cpu" and precision in ("fp32", "bf16")
    if optimize:
        est.optimize()
    return est


__all__ = ["MissingWeightsError", "build_model", "create_estimator"]
