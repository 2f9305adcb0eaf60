"""Configuration: the typed YAML loader and the shipped presets (``track_*.yaml``, ``train_*.yaml``).

The presets are package data of this package, so an installed wheel has them. This package imports
nothing of the project and no torch: loading a config (and reporting a typo in it) is fast.
"""
from __future__ import annotations

from pathlib import Path

from configs.loader import (
    ConfigError,
    apply_overrides,
    from_dict,
    load_yaml,
    parse_override,
    parse_wxh,
    read_yaml,
    save_yaml,
    set_value,
    tagged_union_kinds,
    to_dict,
)

PRESET_DIR = Path(__file__).resolve().parent


def list_presets(prefix: str) -> list[str]:
    """Names of the shipped presets ``<prefix>_<name>.yaml`` (prefix "track" or "train")."""
    return sorted(p.stem.removeprefix(f"{prefix}_") for p in PRESET_DIR.glob(f"{prefix}_*.yaml"))


def resolve_preset(prefix: str, name_or_path: str | Path | None) -> Path | None:
    """A preset name (``<prefix>_<name>.yaml`` shipped here) or a YAML path -> path; None -> None (defaults).

    Raises ConfigError naming the valid presets when the name is unknown.
    """
    if name_or_path is None:
        return None
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        return p
    candidate = PRESET_DIR / f"{prefix}_{name_or_path}.yaml"
    if not candidate.is_file():
        what = {"track": "tracking", "train": "training"}.get(prefix, prefix)
        raise ConfigError(f"unknown {what} preset {str(name_or_path)!r}; valid presets: "
                          f"{', '.join(list_presets(prefix)) or '(none found in ' + str(PRESET_DIR) + ')'}")
    return candidate


__all__ = ["PRESET_DIR", "ConfigError", "apply_overrides", "from_dict", "list_presets", "load_yaml",
           "parse_override", "parse_wxh", "read_yaml", "resolve_preset", "save_yaml", "set_value",
           "tagged_union_kinds", "to_dict"]
