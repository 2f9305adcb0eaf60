"""Pose estimators: top-down networks (one file per architecture), their specs and registry, checkpoints,
batched inference and the estimator factory.

``import estimators`` is cheap (no torch): the names below are loaded on first use.
"""
from __future__ import annotations

import importlib
from typing import Any

# The one list of the modules that register models (each calls ``estimators.registry.register``).
MODEL_MODULES: tuple[str, ...] = ("hrnet", "ms_hrnet", "mspn", "rsn", "multiposenet", "blazepose", "tfjs.movenet")

_LAZY: dict[str, str] = {
    "Family": "spec", "ModelSpec": "spec", "Poses": "spec", "FAMILIES": "spec", "get_family": "spec",
    "PRECISIONS": "precision", "CHECKPOINT_FORMATS": "precision",
    "get_spec": "registry", "list_models": "registry", "register": "registry",
    "build_model": "factory", "create_estimator": "factory",
    "TopDownEstimator": "topdown",
    "load_weights": "checkpoints",
}


def load_models() -> None:
    """Import every module of :data:`MODEL_MODULES` (idempotent), which fills the registry."""
    for name in MODEL_MODULES:
        importlib.import_module(f"{__name__}.{name}")


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = ["MODEL_MODULES", "load_models", *_LAZY]
