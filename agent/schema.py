"""Typed TOML tables -> frozen dataclasses: the config's validation machinery.

A field made with ``opt()`` carries its bounds; ``build()`` checks types, bounds and unknown keys
and collects every problem as ``"<key path>: <what is wrong>"`` instead of stopping at the first.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
import typing
from collections.abc import Callable
from dataclasses import field
from typing import Any

from . import redact

if typing.TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = typing.TypeVar("T", bound="DataclassInstance")
Check = Callable[[Any, str, list[str]], None]  # cross-key checks of one built section


def opt(
    default: Any = dataclasses.MISSING,
    *,
    lo: float | None = None,
    hi: float | None = None,
    gt: float | None = None,
    pattern: str | None = None,
    factory: Callable[[], Any] | None = None,
    when: tuple[str, tuple[str, ...]] | None = None,
    expect: str = "",
) -> Any:
    """A config field with its bounds; ``default`` missing means the key is required.

    ``when=("type", ("gpio",))``: the key may only be set while the sibling key ``type`` is one
    of those values (a gpio pin on a serial relay is a mistake, not something to ignore).
    ``expect`` says in words what ``pattern`` accepts.
    """
    meta = {"lo": lo, "hi": hi, "gt": gt, "pattern": pattern, "when": when, "expect": expect}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def not_a_key(default: Any) -> Any:
    """A field of a config object that the file cannot set (where it came from, its warnings)."""
    return field(default=default, metadata={"key": False})


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(tp)))
    if origin is list:
        return "a list"
    if origin is dict:
        return "a table"
    if dataclasses.is_dataclass(tp):
        return "a table"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(
        tp, str(tp)
    )


def _convert(tp: Any, value: Any, path: str, errors: list[str], check: Check | None) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            errors.append(f"{path}: must be a table")
            return None
        return build(tp, value, path, errors, check)
    if origin is typing.Literal:  # a kind: one of a few strings
        if not isinstance(value, str) or value not in typing.get_args(tp):
            errors.append(f"{path}: must be {_type_name(tp)}, not {value!r}")
            return None
        return value
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list):
            errors.append(f"{path}: must be {_type_name(tp)}")
            return None
        items = [_convert(item_tp, v, f"{path}[{i}]", errors, check) for i, v in enumerate(value)]
        # a bad item (already reported) leaves the list out: no later check sees a None in it
        return None if any(x is None for x in items) else items
    if origin is dict:
        if not isinstance(value, dict):
            errors.append(f"{path}: must be a table")
            return None
        return dict(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            errors.append(f"{path}: must be a number")
            return None
        if value != value or value in (float("inf"), float("-inf")):
            errors.append(f"{path}: must be a finite number")
            return None
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(f"{path}: must be an integer")
            return None
        return value
    if tp in (bool, str):
        if not isinstance(value, tp):
            errors.append(f"{path}: must be {_type_name(tp)}")
            return None
        return value
    raise TypeError(f"unsupported config type {tp!r}")  # a bug in this module, not in the file


def _check_bounds(f: dataclasses.Field[Any], value: Any, path: str, errors: list[str]) -> None:
    m = f.metadata
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if m.get("lo") is not None and value < m["lo"]:
            errors.append(f"{path}: must be >= {m['lo']}, not {value}")
        if m.get("hi") is not None and value > m["hi"]:
            errors.append(f"{path}: must be <= {m['hi']}, not {value}")
        if m.get("gt") is not None and value <= m["gt"]:
            errors.append(f"{path}: must be > {m['gt']}, not {value}")
    # fullmatch: with search, "$" also matches before a trailing line break ("gate\n" passed as an id)
    if isinstance(value, str) and m.get("pattern") and not re.fullmatch(m["pattern"], value):
        shown = redact.text(repr(value))  # a bad URL may still hold a password
        if m.get("expect"):
            errors.append(f"{path}: must be {m['expect']}, not {shown}")
        else:
            errors.append(f"{path}: {shown} does not match {m['pattern']}")


def _check_when(
    f: dataclasses.Field[Any], table: dict[str, Any], fields: dict[str, dataclasses.Field[Any]],
    path: str, errors: list[str],
) -> None:
    if f.metadata.get("when") is None:
        return
    key, allowed = f.metadata["when"]
    actual = table.get(key, fields[key].default)
    if isinstance(actual, str) and actual not in allowed:  # a wrong kind is reported on its own
        wanted = " or ".join(f'"{a}"' for a in allowed)
        errors.append(f"{path}: only for {key} = {wanted} ({key} is \"{actual}\")")


def build(cls: type[T], table: dict[str, Any], path: str, errors: list[str], check: Check | None = None) -> T | None:
    """An instance of the section ``cls``; None when a problem (now in ``errors``) prevents one."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.metadata.get("key", True)}
    prefix = f"{path}." if path else ""
    for key in table:
        if key not in fields:
            errors.append(f"{prefix}{key}: unknown key")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        key_path = f"{prefix}{name}"
        if name not in table:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                errors.append(f"{key_path}: required")
            continue
        value = _convert(hints[name], table[name], key_path, errors, check)
        if value is None:
            continue
        _check_bounds(f, value, key_path, errors)
        _check_when(f, table, fields, key_path, errors)
        kwargs[name] = value
    try:
        obj = cls(**kwargs)
    except TypeError:  # a required key was missing: already reported
        obj = None
    if obj is not None and check is not None:
        check(obj, path, errors)
    return obj


def check_json(value: Any, path: str, errors: list[str]) -> None:
    """A table sent on as JSON (``reader.config``): TOML dates and times have no JSON form."""
    if isinstance(value, dict):
        for k, v in value.items():
            check_json(v, f"{path}.{k}", errors)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check_json(v, f"{path}[{i}]", errors)
    elif isinstance(value, (dt.date, dt.time)):  # datetime is a date
        errors.append(f"{path}: a TOML date or time has no JSON form; quote it: \"{value.isoformat()}\"")
    elif isinstance(value, float) and not math.isfinite(value):
        errors.append(f"{path}: must be a finite number")
    elif value is not None and not isinstance(value, (str, int, float, bool)):
        errors.append(f"{path}: {type(value).__name__} has no JSON form")


def move_keys(
    doc: dict[str, Any], tables: dict[str, tuple[str, type[Any]]], errors: list[str], warnings: list[str],
    path: str = "",
) -> dict[str, str]:
    """Keys of ``new`` still in their ``old`` table (``tables = {old: (new, section)}``) move to
    ``new`` in place, each with a warning; both set is an error. ``path`` is where ``doc`` sits
    (``"cameras[0]."``). Returns ``{new key path: old key path}``."""
    moved: dict[str, str] = {}
    for old, (new, cls) in tables.items():
        src, dst = doc.get(old), doc.get(new, {})
        if not isinstance(src, dict) or not isinstance(dst, dict):
            continue  # reported as "must be a table"
        for key in [f.name for f in dataclasses.fields(cls) if f.name in src]:
            value = src.pop(key)
            was, now = f"{path}{old}.{key}", f"{path}{new}.{key}"
            if key in dst:
                errors.append(f"{was}: moved to {now}, which is set too; keep only {now}")
                continue
            dst[key] = value
            doc[new] = dst
            moved[now] = was
            warnings.append(f"{was} is deprecated: use {now}")
    return moved


def old_name(error: str, moved: dict[str, str]) -> str:
    """An error about a moved key names the key where the file has it."""
    path = error.split(": ", 1)[0]
    for now, was in moved.items():
        if path == now or path.startswith((now + ".", now + "[")):
            return was + error[len(now):]
    return error


def merge_overrides(
    doc: dict[str, Any], items: str, sections: dict[str, set[str] | None], errors: list[str]
) -> set[str]:
    """Each item of the list ``doc[items]`` gets a copy of each global section merged with its own
    table of that name (in place); ``sections`` says which keys an item may override (None: all).

    Returns the key paths an item took from the global section: a problem there is reported
    once, at the global key.
    """
    inherited: set[str] = set()
    listed = doc.get(items, [])
    for i, item in enumerate(listed if isinstance(listed, list) else []):
        if not isinstance(item, dict):
            continue
        for section, allowed in sections.items():
            glob, over = doc.get(section, {}), item.get(section, {})
            if not isinstance(over, dict):
                errors.append(f"{items}[{i}].{section}: must be a table")
                item.pop(section, None)
                continue
            if not isinstance(glob, dict):
                continue  # reported at the global key
            for key in over:
                if allowed is not None and key not in allowed:
                    errors.append(f"{items}[{i}].{section}.{key}: cannot be set per {items.rstrip('s')}"
                                  f" (allowed: {', '.join(sorted(allowed)) or 'none'})")
            item[section] = {**glob, **{k: v for k, v in over.items() if allowed is None or k in allowed}}
            inherited.update(f"{items}[{i}].{section}.{k}" for k in glob if k not in over)
    return inherited


def inherited_from_global(error: str, inherited: set[str]) -> bool:
    """Whether ``error`` is about a key an item took from the global section (see merge_overrides)."""
    path = error.split(": ", 1)[0]
    return any(path == k or path.startswith((k + ".", k + "[")) for k in inherited)


def deepcopy(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: deepcopy(x) for k, x in v.items()}
    if isinstance(v, list):
        return [deepcopy(x) for x in v]
    return v
