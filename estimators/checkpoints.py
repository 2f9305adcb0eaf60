"""Safe, strict checkpoint loading for the estimators.

- Files are read with ``torch.load(weights_only=True)``; the only extra globals allowed are the numpy
  reconstruction functions/classes that MMPose 1.x files need for the numpy arrays in ``meta.dataset_meta``.
  A pickle that asks for anything else (e.g. a ``__reduce__`` calling ``os.system``) is refused, never retried
  unsafely.
- Wrappers, as the released files are: a raw state dict (HRNet ``final_state.pth``/``model_best.pth``),
  ``{'state_dict': ..., 'best_state_dict', 'model': name, ...}`` (HRNet ``checkpoint.pth``, keys ``module.*``),
  ``{'model': ..., 'optimizer', 'scheduler', 'iteration'}`` (MSPN/RSN) and ``{'meta', 'state_dict'}`` (MMPose);
  ``module.`` prefixes are stripped. The wrapper is recognised from the file's structure; ``source`` only picks
  the key remap.
- The remap is ``CHECKPOINT_REMAPS[source]`` of the module defining the model class; ``"native"`` means our own
  layout (what ``save_state_dict`` writes) and needs no remap.
- Loading is strict: missing keys, unexpected keys and shape mismatches are reported together in one
  ``CheckpointError``; NaN/inf values are refused naming the key.
- The keypoint layout a checkpoint was trained for is read from ``meta.dataset_meta`` (MMPose 1.x, and our own
  files written with a layout by :func:`save_state_dict`): :func:`checkpoint_layout`.
"""
from __future__ import annotations

import pickle
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from association.keypoints import KeypointLayout, LayoutError, layout_from_meta

from .precision import CHECKPOINT_FORMATS

FORMATS = CHECKPOINT_FORMATS  # the formats load_weights takes (--checkpoint-format choices)
NATIVE_SOURCE = "native"  # our own layout, as written by save_state_dict
_MAX_LISTED = 12  # keys listed per category in an error message


class CheckpointError(ValueError):
    """A checkpoint file or state dict that cannot be loaded (bad structure, keys, shapes or values)."""


def _numpy_safe_globals() -> list:
    """The numpy globals that pickled ``np.ndarray`` / numpy scalars need (numpy 1.x and 2.x spellings)."""
    import numpy as np

    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    allowed: list = []
    for fn in (multiarray._reconstruct, multiarray.scalar):
        for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            allowed.append((fn, f"{module}.{fn.__name__}"))
    allowed += [np.ndarray, np.dtype]
    # Pickled dtypes are rebuilt as np.dtype(...) then __setstate__ on the concrete dtype class
    # (numpy.dtypes.Float32DType etc. on numpy >= 1.25), which torch checks against the allowed globals.
    scalar_types = (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
                    np.intc, np.uintc, np.longlong, np.ulonglong, np.float16, np.float32, np.float64)
    for t in scalar_types:
        cls = type(np.dtype(t))
        if cls is not np.dtype and cls not in allowed:
            allowed.append(cls)
    return allowed


def read_checkpoint_file(path: str | Path) -> Any:
    """The unpickled content of a ``torch.save`` file, loaded on the CPU with ``weights_only=True``.

    Raises ``FileNotFoundError`` for a missing file and ``CheckpointError`` for a file that is not a readable
    PyTorch file or whose pickle asks for globals outside the weights-only allow-list (it is never executed).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    try:
        with torch.serialization.safe_globals(_numpy_safe_globals()):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        detail = str(exc).strip().splitlines()
        reason = next((line for line in detail if "GLOBAL" in line or "Unsupported" in line),
                      detail[0] if detail else "")
        raise CheckpointError(
            f"{path}: refused to load: its pickle asks for code or classes a weights file never needs "
            f"(weights_only=True allows tensors, containers and numpy arrays only). Torch said: {reason.strip()}"
        ) from None
    except OSError:
        raise  # unreadable file: the OSError already names it
    except Exception as exc:  # corrupt or non-torch content (RuntimeError, EOFError, KeyError, ...); still no code ran
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from None


def unwrap_state_dict(obj: Any, origin: str) -> dict[str, torch.Tensor]:
    """The flat ``{key: Tensor}`` inside a checkpoint object, ``module.`` prefixes stripped.

    ``origin`` (file name) is used in error messages.
    """
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{origin}: expected a dict checkpoint, got {type(obj).__name__}")
    if isinstance(obj.get("state_dict"), Mapping):  # HRNet checkpoint.pth, MMPose 0.x / 1.x
        sd, where = obj["state_dict"], "['state_dict']"
    elif isinstance(obj.get("model"), Mapping):  # MSPN / RSN official
        sd, where = obj["model"], "['model']"
    elif obj and all(isinstance(v, torch.Tensor) for v in obj.values()):  # raw state dict
        sd, where = obj, ""
    else:
        raise CheckpointError(f"{origin}: no state dict found: expected a raw state dict or a dict with "
                              f"'state_dict' or 'model'; top-level keys: {sorted(map(str, obj))[:_MAX_LISTED]}")
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{origin}: entry {where}[{key!r}] is a {type(value).__name__}, not a tensor")
        new = key[len("module."):] if key.startswith("module.") else key
        if new in out:
            raise CheckpointError(f"{origin}: keys {key!r} and {new!r} collide once 'module.' is stripped")
        out[new] = value
    if not out:
        raise CheckpointError(f"{origin}: the state dict{where} is empty")
    return out


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint file safely and return its unwrapped state dict (keys as in the file, minus ``module.``)."""
    return unwrap_state_dict(read_checkpoint_file(path), str(path))


def check_finite(state_dict: Mapping[str, torch.Tensor], origin: str) -> None:
    """Raise ``CheckpointError`` naming the first floating-point entry holding NaN or inf."""
    for key, value in state_dict.items():
        if value.is_floating_point() or value.is_complex():
            # A sum is finite when every value is (cheap, no temporary); only a non-finite sum (NaN/inf inside,
            # or an overflow of huge finite values) needs the element-wise check.
            if not bool(torch.isfinite(value.sum())) and not bool(torch.isfinite(value).all()):
                bad = int((~torch.isfinite(value)).sum())
                raise CheckpointError(f"{origin}: entry {key!r} {tuple(value.shape)} holds {bad} NaN/inf value(s)")


def _listed(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED])
    return shown + (f", ... ({len(keys) - _MAX_LISTED} more)" if len(keys) > _MAX_LISTED else "")


def strict_load(module: nn.Module, state_dict: Mapping[str, torch.Tensor], origin: str) -> nn.Module:
    """``module.load_state_dict(state_dict, strict=True)`` after checking keys and shapes; every missing key,
    unexpected key and shape mismatch is reported in one ``CheckpointError`` naming ``origin``."""
    target = module.state_dict()
    missing = [k for k in target if k not in state_dict]
    unexpected = [k for k in state_dict if k not in target]
    mismatched = [f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(target[k].shape)}"
                  for k in target if k in state_dict and tuple(state_dict[k].shape) != tuple(target[k].shape)]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s): {_listed(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s): {_listed(unexpected)}")
        if mismatched:
            parts.append(f"{len(mismatched)} shape mismatch(es): {_listed(mismatched)}")
        raise CheckpointError(f"{origin}: does not fit {type(module).__name__} ({len(target)} entries): "
                              + "; ".join(parts))
    module.load_state_dict(dict(state_dict), strict=True)
    return module


def checkpoint_remaps(model: nn.Module) -> Mapping:
    """``CHECKPOINT_REMAPS`` of the module that defines ``type(model)``."""
    module = sys.modules.get(type(model).__module__)
    remaps = getattr(module, "CHECKPOINT_REMAPS", None)
    if not isinstance(remaps, Mapping):
        raise CheckpointError(f"{type(model).__module__}.{type(model).__name__} defines no CHECKPOINT_REMAPS")
    return remaps


def remap_state_dict(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str,
                     origin: str = "state dict") -> dict[str, torch.Tensor]:
    """``state_dict`` (unwrapped, as named by ``source``) renamed to ``model``'s own layout."""
    if source == NATIVE_SOURCE:
        return dict(state_dict)
    remaps = checkpoint_remaps(model)
    if source not in remaps:
        valid = ", ".join(sorted([NATIVE_SOURCE, *remaps]))
        raise CheckpointError(f"{origin}: unknown checkpoint source {source!r} for {type(model).__name__}; "
                              f"valid: {valid}")
    try:
        return remaps[source](state_dict)
    except CheckpointError:
        raise
    except ValueError as exc:
        raise CheckpointError(f"{origin}: cannot remap from {source!r}: {exc}") from None


def load_checkpoint(model: nn.Module, path: str | Path, source: str) -> nn.Module:
    """Load the checkpoint file ``path`` written by ``source`` ("official", "mmpose0x", "mmpose1x" or "native")
    strictly into ``model`` (in place) and return ``model``."""
    origin = str(path)
    state_dict = load_state_dict_file(path)
    check_finite(state_dict, origin)
    mapped = remap_state_dict(model, state_dict, source, origin)
    return strict_load(model, mapped, origin)


def suggest_source(state_dict: Mapping[str, Any]) -> str:
    """Guess the source of an unwrapped state dict from its key names.

    ``keypoint_head.*`` -> "mmpose0x"; ``backbone.*`` with ``head.*`` -> "mmpose1x"; ``final_layer``/``top.``/
    ``stage*`` keys without ``backbone.`` -> "official". Raises ``CheckpointError`` when the keys mix sources or
    match none.
    """
    keys = [str(k)[len("module."):] if str(k).startswith("module.") else str(k) for k in state_dict]
    has_kh = any(k.startswith("keypoint_head.") for k in keys)
    has_head = any(k.startswith("head.") for k in keys)
    has_backbone = any(k.startswith("backbone.") for k in keys)
    has_official = any(k.startswith(("final_layer", "top.", "stage")) for k in keys)
    sample = ", ".join(keys[:5])
    if has_kh and has_head:
        raise CheckpointError(f"ambiguous checkpoint source: both 'keypoint_head.' (MMPose 0.x) and 'head.' "
                              f"(MMPose 1.x) "
                              f"keys present (first keys: {sample})")
    if (has_kh or has_head) and has_official:
        raise CheckpointError(f"ambiguous checkpoint source: MMPose head keys and official top-level keys "
                              f"(final_layer/top./stage*) both present (first keys: {sample})")
    if has_kh:
        return "mmpose0x"
    if has_head and has_backbone:
        return "mmpose1x"
    if has_official and not has_backbone:
        return "official"
    raise CheckpointError(f"cannot tell the checkpoint source from its keys (no keypoint_head./head.+backbone./"
                          f"final_layer/top./stage* pattern); first keys: {sample or '(none)'}")


def checkpoint_layout(obj: Any, origin: str) -> KeypointLayout | None:
    """The keypoint layout a checkpoint object (as read by :func:`read_checkpoint_file`) declares, or None.

    Read from ``obj["meta"]["dataset_meta"]``: MMPose 1.x's dataset metadata or our ``KeypointLayout.to_meta()``.
    Files without it (official, MMPose 0.x, plain state dicts) say nothing.
    """
    meta = obj.get("meta") if isinstance(obj, Mapping) else None
    dataset_meta = meta.get("dataset_meta") if isinstance(meta, Mapping) else None
    if not isinstance(dataset_meta, Mapping):
        return None
    try:
        return layout_from_meta(dataset_meta)
    except (LayoutError, TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{origin}: meta.dataset_meta does not describe a keypoint layout: {exc}") from None


def guess_source(model: nn.Module, state_dict: Mapping[str, Any]) -> str:
    """The format of an unwrapped ``state_dict`` for ``model``: "native" when its keys are exactly ``model``'s
    own, else :func:`suggest_source` of its keys."""
    if set(state_dict) == set(model.state_dict()):
        return NATIVE_SOURCE
    return suggest_source(state_dict)


def load_weights_object(model: nn.Module, obj: Any, origin: str,
                        checkpoint_format: str | None = None) -> tuple[str, KeypointLayout | None]:
    """:func:`load_weights` of an already read checkpoint object (``origin`` names it in errors)."""
    layout = checkpoint_layout(obj, origin)
    k = getattr(model, "num_keypoints", None)
    if layout is not None and k is not None and layout.num_keypoints != int(k):
        raise CheckpointError(f"{origin}: its keypoint layout {layout.name!r} has {layout.num_keypoints} keypoints, "
                              f"the model {type(model).__name__} has {k}")
    state_dict = unwrap_state_dict(obj, origin)
    fmt = checkpoint_format if checkpoint_format is not None else guess_source(model, state_dict)
    check_finite(state_dict, origin)
    strict_load(model, remap_state_dict(model, state_dict, fmt, origin), origin)
    return fmt, layout


def load_weights(model: nn.Module, path: str | Path,
                 checkpoint_format: str | None = None) -> tuple[str, KeypointLayout | None]:
    """Load checkpoint file ``path`` strictly into ``model`` (in place).

    checkpoint_format: one of :data:`FORMATS`; None = guessed from the keys (:func:`guess_source`). Returns
    (the format used, the keypoint layout the file declares or None, see :func:`checkpoint_layout`).
    """
    return load_weights_object(model, read_checkpoint_file(path), str(path), checkpoint_format)


def save_state_dict(model: nn.Module, path: str | Path, layout: KeypointLayout | None = None) -> Path:
    """Write ``model``'s state dict (our layout, CPU tensors) to ``path``; load it back with format "native".

    Without ``layout`` the file is a plain state dict; with it ``{"state_dict", "meta": {"dataset_meta":
    layout.to_meta()}}`` so :func:`load_weights` returns the layout.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    torch.save(state if layout is None else {"state_dict": state, "meta": {"dataset_meta": layout.to_meta()}}, path)
    return path
