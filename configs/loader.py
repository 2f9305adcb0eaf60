"""Typed configuration: dataclasses loaded from YAML with unknown keys rejected, dotted overrides, saving.

Configs are resolved once at the edge (command line, Python API) and saved next to every output;
components never receive a config object, only the values they need.

Tagged unions: a field typed as a union of dataclasses that each declare ``kind: Literal[...]`` is a
section whose ``kind`` picks the dataclass, e.g. ``detector: {kind: torchvision, model: ...}``; only that
kind's keys are accepted. A section without ``kind`` takes the kind of the field's default. Setting a
section's ``kind`` to another value (an override, :func:`set_value`) starts that section afresh, so the
previous kind's keys do not leak into the new one.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value or key is wrong; the message names the file and the dotted key."""


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is not None:  # Optional[str], list[int], Literal[...]: spell it out
        return str(tp).replace("typing.", "")
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        kinds = tagged_union_kinds(tp)
        if kinds is not None:
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: expected a mapping with a 'kind', got {value!r}")
            kind = value.get("kind")
            if kind not in kinds:
                raise ConfigError(f"{where}.kind: {kind!r} is not one of {', '.join(map(repr, kinds))}")
            return _from_dict(kinds[kind], value, where)
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{where}: {value!r} is not a valid {_type_name(tp)}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {type(value).__name__}")
        return _from_dict(tp, value, where)
    if origin in (list, tuple) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}")
            return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        out = [_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if (origin is tuple or tp is tuple) else out
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def tagged_union_kinds(tp: Any) -> dict[str, type] | None:
    """For a union of dataclasses that each declare ``kind: Literal[...]``: {kind value: dataclass}; else None."""
    if typing.get_origin(tp) not in (typing.Union, types.UnionType):
        return None
    table: dict[str, type] = {}
    for cls in typing.get_args(tp):
        if cls is type(None):
            continue
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            return None
        hint = typing.get_type_hints(cls).get("kind")
        if typing.get_origin(hint) is not typing.Literal:
            return None
        for value in typing.get_args(hint):
            table[value] = cls
    return table or None


def _default_kind(field: dataclasses.Field) -> Any:
    """The ``kind`` of a field's default section (None when it has none)."""
    if field.default_factory is not dataclasses.MISSING:
        return getattr(field.default_factory(), "kind", None)
    return getattr(field.default, "kind", None)


def _from_dict(cls: type[T], data: dict, where: str) -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]  # cls is a dataclass
    unknown = sorted(set(data) - set(fields))
    if unknown:
        kind = f" for kind {data.get('kind', fields['kind'].default)!r}" if "kind" in fields else ""
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}{kind}; valid keys: "
                          f"{', '.join(sorted(fields))}")
    kwargs = {}
    for k, v in data.items():
        if isinstance(v, dict) and "kind" not in v and tagged_union_kinds(hints[k]) is not None:
            kind = _default_kind(fields[k])  # a section without 'kind' is of its default's kind
            if kind is not None:
                v = {"kind": kind, **v}
        kwargs[k] = _convert(v, hints[k], f"{where}.{k}" if where else k)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        # section classes name the dotted key themselves ("flow.scale: ..."): keep such a message as it is
        msg = str(exc)
        if (msg.startswith((where + ".", where + ":")) if where else msg.split(":", 1)[0] in fields):
            raise ConfigError(msg) from None
        raise ConfigError(f"{where or cls.__name__}: {msg}") from None


def from_dict(cls: type[T], data: dict, source: str = "<dict>") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys and wrongly typed values raise ConfigError."""
    try:
        return _from_dict(cls, data or {}, "")
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def parse_wxh(text: str, what: str = "size") -> tuple[int, int]:
    """``"WxH"`` (e.g. ``"192x256"``) -> (w, h) positive integers; ConfigError naming ``what`` otherwise."""
    try:
        w, h = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise ConfigError(f"{what}: expected WxH like 192x256, got {text!r}") from None
    if w <= 0 or h <= 0:
        raise ConfigError(f"{what}: width and height must be positive, got {text!r}")
    return w, h


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b.c=VALUE"`` -> (["a","b","c"], VALUE parsed as YAML, so 3 -> int, true -> bool, [1,2] -> list)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.sub=value")
    key, raw = text.split("=", 1)
    return key.strip().split("."), yaml.safe_load(raw) if raw.strip() else ""


def set_value(data: dict, path: list[str] | tuple[str, ...], value: Any, what: str | None = None) -> None:
    """Set ``data[path[0]]...[path[-1]] = value`` in place (a typed Python value, no parsing).

    Setting ``kind`` of a section that holds another kind replaces the section by ``{kind: value}`` (the old
    kind's keys would not be valid for the new one). ``what`` names the setting in errors (default: the path).
    """
    node = data
    for part in path[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"{what or '.'.join(path)}: {part!r} is not a section")
    if path[-1] == "kind" and "kind" in node and node["kind"] != value:
        node.clear()
    node[path[-1]] = value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply dotted ``key=value`` overrides to a nested mapping (a copy is returned)."""
    import copy

    data = copy.deepcopy(data or {})
    for text in overrides:
        path, value = parse_override(text)
        set_value(data, path, value, what=f"override {text!r}")
    return data


def read_yaml(path: str | Path) -> dict:
    """The top-level mapping of a YAML config file; ConfigError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return loaded


def load_yaml(cls: type[T], path: str | Path | None, overrides: list[str] | None = None, base: dict | None = None) -> T:
    """Load ``cls`` from a YAML file (or ``base``/defaults when ``path`` is None) plus dotted overrides."""
    data: dict = dict(base or {})
    source = "<defaults>"
    if path is not None:
        data.update(read_yaml(path))
        source = str(path)
    if overrides:
        data = apply_overrides(data, overrides)
        source += " + overrides"
    return from_dict(cls, data, source)


def to_dict(obj: Any) -> Any:
    """A dataclass (nested) -> plain YAML-safe data (tuples become lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def save_yaml(obj: Any, path: str | Path) -> Path:
    """Write the fully resolved config next to an output."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(to_dict(obj), sort_keys=False))
    return path
