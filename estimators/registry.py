"""The registry of named estimator builders: a plain dict, filled by the architecture modules.

``register_model(name)`` decorates a zero-or-keyword-argument builder returning an ``nn.Module``.
Duplicate names raise; unknown names raise listing the valid ones.
"""
from __future__ import annotations

from typing import Callable

import torch.nn as nn

_BUILDERS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _BUILDERS:
            raise ValueError(f"estimator {name!r} is registered twice ({_BUILDERS[name].__module__} and {fn.__module__})")
        _BUILDERS[name] = fn
        return fn

    return deco


def _ensure_loaded() -> None:
    # Importing the architecture modules fills the registry (one module per family).
    from . import hrnet, ms_hrnet, mspn, rsn  # noqa: F401
    try:
        from . import blazepose  # noqa: F401  (the embedded offline model; its own issue)
    except ModuleNotFoundError as exc:  # pragma: no cover - until it lands
        if exc.name != f"{__package__}.blazepose":
            raise


def list_models() -> list[str]:
    _ensure_loaded()
    return sorted(_BUILDERS)


def build_model(name: str, **kwargs) -> nn.Module:
    """Build the estimator called ``name`` (see ``list_models()``) with the builder's keyword arguments."""
    _ensure_loaded()
    try:
        builder = _BUILDERS[name]
    except KeyError:
        raise ValueError(f"unknown estimator {name!r}; valid names: {', '.join(sorted(_BUILDERS))}") from None
    return builder(**kwargs)
