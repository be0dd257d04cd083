"""Typed TOML tables -> frozen dataclasses: the config's validation machinery.

A field made with ``opt()`` carries its bounds; ``build()`` checks types, bounds and unknown keys
and collects every problem as ``"<key path>: <what is wrong>"`` instead of stopping at the first.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Callable
from dataclasses import field
from typing import Any

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
    choices: tuple[Any, ...] | None = None,
    pattern: str | None = None,
    factory: Callable[[], Any] | None = None,
) -> Any:
    """A config field with its bounds; ``default`` missing means the key is required."""
    meta = {"lo": lo, "hi": hi, "gt": gt, "choices": choices, "pattern": pattern}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
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
    if m.get("choices") is not None and value not in m["choices"]:
        errors.append(f"{path}: must be one of {', '.join(map(repr, m['choices']))}, not {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if m.get("lo") is not None and value < m["lo"]:
            errors.append(f"{path}: must be >= {m['lo']}, not {value}")
        if m.get("hi") is not None and value > m["hi"]:
            errors.append(f"{path}: must be <= {m['hi']}, not {value}")
        if m.get("gt") is not None and value <= m["gt"]:
            errors.append(f"{path}: must be > {m['gt']}, not {value}")
    # fullmatch: with search, "$" also matches before a trailing line break ("gate\n" passed as an id)
    if isinstance(value, str) and m.get("pattern") and not re.fullmatch(m["pattern"], value):
        errors.append(f"{path}: {value!r} does not match {m['pattern']}")


def build(cls: type[T], table: dict[str, Any], path: str, errors: list[str], check: Check | None = None) -> T | None:
    """An instance of the section ``cls``; None when a problem (now in ``errors``) prevents one."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "path"}
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
        kwargs[name] = value
    try:
        obj = cls(**kwargs)
    except TypeError:  # a required key was missing: already reported
        obj = None
    if obj is not None and check is not None:
        check(obj, path, errors)
    return obj


def deepcopy(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: deepcopy(x) for k, x in v.items()}
    if isinstance(v, list):
        return [deepcopy(x) for x in v]
    return v
