"""The registry of model names: name -> :class:`estimators.spec.ModelSpec`.

Registration flows one way: each model module calls :func:`register` for its specs; this module imports none
of them. The package's one list of model modules (``estimators.MODEL_MODULES``, imported by
``estimators.load_models``) is loaded on the first lookup. Duplicate names raise; unknown names raise
listing the valid ones. No torch here.
"""
from __future__ import annotations

from .spec import ModelSpec, SpecError

_SPECS: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add ``spec`` under ``spec.name`` (a name registers once) and return it."""
    if not isinstance(spec, ModelSpec):
        raise SpecError(f"register: expected a ModelSpec, got {type(spec).__name__}")
    old = _SPECS.get(spec.name)
    if old is not None and old is not spec:
        raise SpecError(f"estimator {spec.name!r} is registered twice ({getattr(old.builder, '__module__', '?')} "
                        f"and {getattr(spec.builder, '__module__', '?')})")
    _SPECS[spec.name] = spec
    return spec


def _load() -> None:
    from . import load_models  # the package's explicit list of model modules

    load_models()


def get_spec(name: str) -> ModelSpec:
    """The spec registered as ``name`` (see :func:`list_models`)."""
    _load()
    try:
        return _SPECS[name]
    except (KeyError, TypeError):
        raise SpecError(f"unknown estimator {name!r}; valid names: {', '.join(sorted(_SPECS))}") from None


def list_models(kind: str | None = None) -> list[str]:
    """Sorted registered names (only those of ``kind``, e.g. "topdown", when given)."""
    _load()
    return sorted(n for n, s in _SPECS.items() if kind is None or s.kind == kind)


__all__ = ["get_spec", "list_models", "register"]
