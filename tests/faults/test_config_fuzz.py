"""Fuzzed configurations (hypothesis), key by key: every key of every section, the ``[[cameras]]``
(their zones and per-camera sections), ``[[webhooks]]`` and ``[[rules.allow]]`` tables included.

A value of the key's type within its bounds, choices and pattern is accepted and lands in the config;
a value of another type, out of bounds, not among the choices or not matching the pattern is a
ConfigError naming that key path. ``plate-agent check-config`` gives the same verdicts (exit 0, or
exit 2 with the key on stderr). Arbitrary documents and bytes are config errors, never a traceback.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from agent import config
from agent.__main__ import main
from agent.errors import ConfigError
from agent.schema import deepcopy

pytestmark = pytest.mark.faults

Path_ = tuple[str | int, ...]  # ("cameras", 0, "zones", 0, "polygon")

# the smallest valid document with one table in every array of tables
BASE: dict[str, Any] = {
    "cameras": [{"id": "gate", "source": "/dev/null", "type": "file",
                 "zones": [{"polygon": [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]]}]}],
    "webhooks": [{"url": "http://127.0.0.1:9/hook"}],
    "rules": {"allow": [{"plate": "AB123CD"}], "deny": [{"plate": "XY999"}]},
}


@dataclasses.dataclass(frozen=True)
class Key:
    path: Path_
    tp: Any
    meta: typing.Mapping[str, Any]
    owner: type

    @property
    def name(self) -> str:
        return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in self.path).lstrip(".")


def _item(tp: Any) -> Any:
    return typing.get_args(tp)[0] if typing.get_origin(tp) is list else None


def _walk(cls: type, prefix: Path_, only: typing.Collection[str] | None = None) -> Iterator[Key]:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.metadata.get("key", True) or (only is not None and f.name not in only):
            continue  # path, warnings: where the file was loaded from and what it warned, not keys
        tp, path = hints[f.name], (*prefix, f.name)
        if dataclasses.is_dataclass(tp):
            per_camera = config.PER_CAMERA.get(f.name) if cls is config.CameraConfig else None
            yield from _walk(typing.cast(type, tp), path, per_camera)
        elif dataclasses.is_dataclass(_item(tp)):
            yield from _walk(_item(tp), (*path, 0))
        else:
            yield Key(path, tp, f.metadata, cls)


KEYS = list(_walk(config.Config, ()))
BY_NAME = {k.name: k for k in KEYS}


def lookup(obj: Any, path: Path_) -> Any:
    for p in path:
        obj = obj[p] if isinstance(p, int) else getattr(obj, p)
    return obj


def doc_with(path: Path_, value: Any, extra: dict[Path_, Any] | None = None) -> dict[str, Any]:
    """BASE with ``value`` at ``path`` (tables on the way created as needed)."""
    doc = deepcopy(BASE)
    for p, v in [*(extra or {}).items(), (path, value)]:
        node: Any = doc
        for seg in p[:-1]:
            node = node[seg] if isinstance(seg, int) else node.setdefault(seg, {})
        node[p[-1]] = v
    return doc


# ---------------------------------------------------------------- values

def full_match(pattern: str, text: str) -> bool:
    return re.fullmatch(pattern, text) is not None


def of_type(tp: Any, v: Any) -> bool:
    """Whether ``v`` is a value of the key type ``tp`` (bounds aside)."""
    if tp is bool or tp is str:
        return isinstance(v, tp)
    if typing.get_origin(tp) is typing.Literal:  # a kind: a string
        return isinstance(v, str)
    if tp is int:
        return isinstance(v, int) and not isinstance(v, bool)
    if tp is float:
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if typing.get_origin(tp) is list:
        return isinstance(v, list) and all(of_type(_item(tp), x) for x in v)
    if typing.get_origin(tp) is dict:
        return isinstance(v, dict)
    raise AssertionError(f"no test values for config type {tp!r}")


def toml_value(v: Any) -> bool:
    """Whether ``v`` could come out of tomllib (no None anywhere)."""
    if isinstance(v, list):
        return all(toml_value(x) for x in v)
    if isinstance(v, dict):
        return all(toml_value(x) for x in v.values())
    return v is not None


ANY = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
).filter(toml_value)
FINITE = {"allow_nan": False, "allow_infinity": False}
POINT = st.lists(st.floats(0.0, 1.0), min_size=2, max_size=2)


def valid_number(tp: Any, m: typing.Mapping[str, Any]) -> st.SearchStrategy[Any]:
    lo, hi, gt = m.get("lo"), m.get("hi"), m.get("gt")
    low = lo if lo is not None else gt
    ints = st.integers(min_value=None if low is None else math.floor(low) + (1 if gt is not None else 0),
                       max_value=None if hi is None else math.floor(hi))
    if tp is int:
        return ints
    floats = st.floats(min_value=low, max_value=hi, exclude_min=gt is not None and lo is None, **FINITE)
    return floats | ints.filter(lambda i: low is None or i > low or (lo is not None and i == lo))


RELAY_TYPE = {"none": {}, "gpio": {("relay", "pin"): "17"}, "serial": {("relay", "port"): "loop://"}}
GPIO: dict[Path_, Any] = {("relay", "type"): "gpio", ("relay", "pin"): "17"}
SERIAL: dict[Path_, Any] = {("relay", "type"): "serial", ("relay", "port"): "loop://"}
RAW: dict[Path_, Any] = {**SERIAL, ("relay", "protocol"): "raw", ("relay", "on_bytes"): "A00101A2",
                         ("relay", "off_bytes"): "A00100A1"}
HEX = st.lists(st.integers(0, 255), min_size=1, max_size=8).map(lambda b: bytes(b).hex())
SCHEDULE = st.sampled_from(["", "Mon-Fri 07:00-19:00", "Fri 22:00-06:00; Sat 08:00-12:00", "10:00-24:00"])
DATE = st.sampled_from(["", "2026-01-01", "2026-01-01T08:00", "2026-12-31 23:59:59"])
PLATE = st.from_regex(r"[A-Za-z0-9]{1,8}([ \-][A-Za-z0-9]{1,8})?", fullmatch=True).filter(
    lambda s: sum(c.isalnum() for c in s) <= 16)
NOT_A_SCHEDULE = st.sampled_from(["Mon 25:00-26:00", "Funday 07:00-08:00", "07:00-07:00", "7-8", "Mon"])
NOT_A_DATE = st.sampled_from(["2024-02-30", "2026-13-01", "01/02/2026", "2026-01-01T25:00"])
NOT_A_PLATE = st.sampled_from(["", " - ", "AB#12", "ÄB12", "A" * 17])

# keys whose valid values another key must agree with (the cross-key checks), given that other key
CONTEXT: dict[str, Callable[[Any], dict[Path_, Any]]] = {
    "relay.type": lambda v: RELAY_TYPE[v],
    **{f"relay.{k}": lambda v: GPIO for k in ("pin", "active_high")},  # [relay] takes its type's keys only
    **{f"relay.{k}": lambda v: SERIAL for k in ("port", "baud", "channel")},
    "relay.protocol": lambda v: RAW if v == "raw" else SERIAL,
    **{f"relay.{k}": lambda v: RAW for k in ("on_bytes", "off_bytes")},
    "relay.pulse_s": lambda v: {("relay", "max_on_s"): 300.0},
    "relay.max_on_s": lambda v: {("relay", "pulse_s"): min(v, 60.0)},
    "mqtt.ca_file": lambda v: {("mqtt", "tls"): True},
    "mqtt.reconnect_min_s": lambda v: {("mqtt", "reconnect_max_s"): 3600.0},
    "mqtt.reconnect_max_s": lambda v: {("mqtt", "reconnect_min_s"): v},
    # the open command needs TLS and a username (or insecure_command); insecure_command needs the command
    "mqtt.command_topic": lambda v: {("mqtt", "tls"): True, ("mqtt", "username"): "agent"},
    "mqtt.insecure_command": lambda v: {("mqtt", "command_topic"): v},
}
# valid values a key's type and bounds do not describe alone
VALID: dict[str, st.SearchStrategy[Any]] = {
    "relay.cameras": st.lists(st.just("gate"), max_size=2),  # ids of configured cameras
    "relay.port": st.sampled_from(["loop://", "/dev/ttyUSB0", "socket://127.0.0.1:9"]),
    "relay.on_bytes": HEX,
    "relay.off_bytes": HEX,
    "cameras[0].zones[0].polygon": st.lists(POINT, min_size=3, max_size=8),
    # files the loader reads (check-config too): none, or one that exists
    "rules.file": st.just(""),
    "detector.model_path": st.sampled_from(["", __file__]),
    **{f"rules.{lst}[0].{k}": s for lst in ("allow", "deny")
       for k, s in (("plate", PLATE), ("schedule", SCHEDULE), ("valid_from", DATE), ("valid_until", DATE))},
}
INVALID: dict[str, st.SearchStrategy[Any]] = {
    **{f"rules.{lst}[0].{k}": s for lst in ("allow", "deny")
       for k, s in (("plate", NOT_A_PLATE), ("schedule", NOT_A_SCHEDULE), ("valid_from", NOT_A_DATE),
                    ("valid_until", NOT_A_DATE))},
    "relay.cameras": st.lists(st.text(max_size=8).filter(lambda s: s != "gate"), min_size=1, max_size=2),
    "cameras[0].zones[0].polygon": (
        st.lists(POINT, max_size=2)  # not a polygon
        | st.lists(st.lists(st.floats(0.0, 1.0), max_size=4).filter(lambda p: len(p) != 2), min_size=3, max_size=4)
        | st.lists(st.lists(st.floats(**FINITE).filter(lambda c: not 0 <= c <= 1), min_size=2, max_size=2),
                   min_size=3, max_size=4)
    ),
}


def valid(key: Key) -> st.SearchStrategy[Any]:
    if key.name in VALID:
        return VALID[key.name]
    m, tp = key.meta, key.tp
    if typing.get_origin(tp) is typing.Literal:
        return st.sampled_from(typing.get_args(tp))
    if tp is bool:
        return st.booleans()
    if tp in (int, float):
        return valid_number(tp, m)
    if tp is str:
        return st.from_regex(m["pattern"], fullmatch=True) if m.get("pattern") else st.text(max_size=30)
    if typing.get_origin(tp) is list and _item(tp) is str:
        return st.lists(st.text(max_size=8), max_size=3)
    if typing.get_origin(tp) is dict:  # a free-form table passed on as it is (no NaN: compared below)
        scalar = st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(**FINITE) | st.text(max_size=8)
        return st.dictionaries(st.text(max_size=8), scalar | st.lists(scalar, max_size=2), max_size=3)
    raise AssertionError(f"no valid values for {key.name}: {tp!r}")


def right_type(tp: Any) -> st.SearchStrategy[Any]:
    """Values of type ``tp``, bounds aside."""
    if typing.get_origin(tp) is typing.Literal:
        return st.sampled_from(typing.get_args(tp))
    if tp in (bool, int, str):
        return {bool: st.booleans(), int: st.integers(-2**63, 2**63 - 1), str: st.text(max_size=8)}[tp]
    if tp is float:
        return st.floats(**FINITE)
    if typing.get_origin(tp) is list:
        return st.lists(right_type(_item(tp)), max_size=3)
    return st.dictionaries(st.text(max_size=8), st.integers(), max_size=2)


def wrong_type(tp: Any) -> st.SearchStrategy[Any]:
    """Values not of type ``tp``: other types, and lists with one wrong item among right ones."""
    out = ANY.filter(lambda v: not of_type(tp, v))
    if typing.get_origin(tp) is list:
        item = _item(tp)
        some = st.lists(right_type(item), max_size=3)
        out = out | st.tuples(some, wrong_type(item), some).map(lambda t: [*t[0], t[1], *t[2]])
    return out


def invalid(key: Key) -> st.SearchStrategy[Any]:
    m, tp = key.meta, key.tp
    out = [wrong_type(tp)]
    if key.name in INVALID:
        out.append(INVALID[key.name])
    if tp in (int, float):
        nums = st.integers(-2**70, 2**70) | (st.floats(**FINITE) if tp is float else st.nothing())
        if m.get("lo") is not None:
            out.append(nums.filter(lambda x: x < m["lo"]))
        if m.get("hi") is not None:
            out.append(nums.filter(lambda x: x > m["hi"]))
        if m.get("gt") is not None:
            out.append(nums.filter(lambda x: x <= m["gt"]))
        if tp is float:
            out.append(st.sampled_from([math.nan, math.inf, -math.inf]))
    if typing.get_origin(tp) is typing.Literal:
        out.append(st.text(max_size=10).filter(lambda s: s not in typing.get_args(tp)))
    if m.get("pattern"):
        out.append(st.text(max_size=20).filter(lambda s: not full_match(m["pattern"], s)))
        # a valid value with a line break after it (re.search's "$" lets that through)
        out.append(st.from_regex(m["pattern"], fullmatch=True).map(lambda s: s + "\n")
                   .filter(lambda s: not full_match(m["pattern"], s)))
    return st.one_of(out)


def valid_case(key: Key) -> st.SearchStrategy[tuple[Key, Any]]:
    return st.tuples(st.just(key), valid(key))


def invalid_case(key: Key) -> st.SearchStrategy[tuple[Key, Any]]:
    return st.tuples(st.just(key), invalid(key))


VALID_CASES = st.sampled_from(KEYS).flatmap(valid_case)
INVALID_CASES = st.sampled_from(KEYS).flatmap(invalid_case)
EACH_KEY = pytest.mark.parametrize("key", KEYS, ids=[k.name for k in KEYS])


def names_key(errors: list[str], name: str) -> bool:
    """Whether an error is about the key ``name`` (or an item of it: ``name[2]: ...``)."""
    return any(e.startswith((f"{name}:", f"{name}[")) for e in errors)


# ---------------------------------------------------------------- the keys

def test_every_section_and_table_is_fuzzed() -> None:
    """A section or table class added to the config is fuzzed too, or this fails."""
    defined = {c for c in vars(config).values() if dataclasses.is_dataclass(c)}
    assert {k.owner for k in KEYS} == defined
    for name in ("cameras[0].fps_max", "cameras[0].zones[0].polygon", "cameras[0].motion.threshold",
                 "cameras[0].reader.regions", "webhooks[0].url", "webhooks[0].timeout_s",
                 "rules.allow[0].plate", "rules.deny[0].schedule", "relay.pulse_s", "log_level"):
        assert name in BY_NAME, name
    assert "cameras[0].reader.url" not in BY_NAME  # not settable per camera


def test_every_number_has_bounds() -> None:
    """The fuzzing above checks the bounds a key declares; this, that every number declares both."""
    unbounded = [k.name for k in KEYS if k.tp in (int, float)
                 and (k.meta.get("hi") is None or (k.meta.get("lo") is None and k.meta.get("gt") is None))]
    assert unbounded == []


def test_the_base_document_is_valid() -> None:
    cfg = config.parse(BASE)
    assert [c.id for c in cfg.cameras] == ["gate"] and len(cfg.webhooks) == 1 and len(cfg.rules.allow) == 1


@EACH_KEY
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_a_valid_value_is_accepted(key: Key, data: st.DataObject) -> None:
    value = data.draw(valid(key), label=key.name)
    extra = CONTEXT[key.name](value) if key.name in CONTEXT else {}
    cfg = config.parse(doc_with(key.path, value, extra))
    got = lookup(cfg, key.path)
    assert got == value and type(got) is (float if key.tp is float else type(value)), (got, value)


@EACH_KEY
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_a_wrong_value_is_rejected_naming_the_key(key: Key, data: st.DataObject) -> None:
    value = data.draw(invalid(key), label=key.name)
    with pytest.raises(ConfigError) as info:
        config.parse(doc_with(key.path, value))
    errors = info.value.errors
    assert errors and all(": " in e for e in errors), errors
    assert names_key(errors, key.name), errors


@pytest.mark.parametrize("path", [("cameras",), ("cameras", 0), ("webhooks",), ("webhooks", 0), ("rules", "allow"),
                                  ("rules", "allow", 0), ("cameras", 0, "zones", 0), ("cameras", 0, "motion"),
                                  ("motion",), ("relay",)])
@pytest.mark.parametrize("value", [1, "x", True, [1]])  # [1]: a list of tables whose item is no table
def test_a_table_or_list_of_the_wrong_type_is_named(path: Path_, value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        config.parse(doc_with(path, value))
    name = Key(path, None, {}, object).name
    assert names_key(info.value.errors, name), info.value.errors


# ---------------------------------------------------------------- the command line


def toml(v: Any) -> str:
    """``v`` as a TOML value (inline tables; what tomllib reads back as ``v``)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if v != v else "inf" if v == math.inf else "-inf" if v == -math.inf else repr(v)
    if isinstance(v, str):  # JSON escapes are TOML escapes; DEL must be escaped in TOML only
        return json.dumps(v, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(v, list):
        return "[" + ", ".join(map(toml, v)) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml(k)} = {toml(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def int64(v: Any) -> bool:
    if isinstance(v, list):
        return all(int64(x) for x in v)
    if isinstance(v, dict):
        return all(int64(x) for x in v.values())
    return not isinstance(v, int) or -2**63 <= v < 2**63


def check_config(tmp_path: Path, capsys: pytest.CaptureFixture[str], doc: dict[str, Any]) -> tuple[int, str]:
    path = tmp_path / "fuzz.toml"
    path.write_text("".join(f"{k} = {toml(v)}\n" for k, v in doc.items()), encoding="utf-8")
    code = main(["check-config", "-c", str(path)])
    out = capsys.readouterr()
    assert "Traceback" not in out.err + out.out
    return code, out.err


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(good=VALID_CASES, bad=INVALID_CASES)
def test_check_config_gives_the_same_verdicts(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              good: tuple[Key, Any], bad: tuple[Key, Any]) -> None:
    assume(int64(good[1]) and int64(bad[1]))
    key, value = good
    code, err = check_config(tmp_path, capsys, doc_with(key.path, value, CONTEXT[key.name](value)
                                                        if key.name in CONTEXT else {}))
    assert code == 0, err
    key, value = bad
    code, err = check_config(tmp_path, capsys, doc_with(key.path, value))
    assert code == 2 and f"{key.name}" in err, err


# ---------------------------------------------------------------- whole documents


@settings(max_examples=200, deadline=None)
@given(doc=st.dictionaries(st.text(max_size=12), ANY, max_size=4))
def test_arbitrary_documents_never_raise_anything_but_config_error(doc: dict[str, Any]) -> None:
    try:
        config.parse(doc)
    except ConfigError as err:
        assert err.errors
    # any other exception fails the test


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.binary(max_size=200))
def test_garbage_files_are_config_errors(tmp_path: Path, text: bytes) -> None:
    path = tmp_path / "garbage.toml"
    path.write_bytes(text)
    try:
        config.load(path)
    except ConfigError as err:
        assert err.errors
    # a document that happens to be valid TOML and a valid config is fine too


def test_wrong_item_types_in_a_camera_list_are_named_not_a_crash() -> None:
    """Found by the fuzzer: ``relay.cameras = [1, 2]`` used to end in a TypeError."""
    with pytest.raises(ConfigError) as info:
        config.parse({"cameras": [{"id": "gate", "source": "/dev/null"}], "relay": {"cameras": [1, 2]}})
    assert info.value.errors[0].startswith("relay.cameras[0]:")


@pytest.mark.parametrize(("polygon", "error"), [
    ([[0.5, "x"], [1, 0], [1, 1]], "polygon[0][1]: must be a number"),
    ([None], "polygon[0]: must be a list"),
    ([[0, 0], [1, 0], "x"], "polygon[2]: must be a list"),
    ([[0, 0], [1, 0], [1, True]], "polygon[2][1]: must be a number"),
])
def test_wrong_items_in_a_zone_polygon_are_named_not_a_crash(polygon: list[Any], error: str) -> None:
    """Found by the fuzzer: a point that is not a list of numbers used to end in a TypeError."""
    with pytest.raises(ConfigError) as info:
        config.parse(doc_with(("cameras", 0, "zones", 0, "polygon"), polygon))
    assert info.value.errors == [f"cameras[0].zones[0].{error}"]
