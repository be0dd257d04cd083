"""Fuzzed configurations (hypothesis): a wrong value anywhere is a ConfigError naming its key, and
``plate-agent check-config`` exits 2 with that key on stderr; never a traceback."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent import config
from agent.__main__ import main
from agent.errors import ConfigError

pytestmark = pytest.mark.faults

SECTIONS = {"motion": config.MotionConfig, "detector": config.DetectorConfig, "crop": config.CropConfig,
            "reader": config.ReaderConfig, "rules": config.RulesConfig, "mqtt": config.MqttConfig,
            "relay": config.RelayConfig, "storage": config.StorageConfig, "status": config.StatusConfig}
KEYS = sorted((s, f.name) for s, cls in SECTIONS.items() for f in dataclasses.fields(cls))
CAMERA = {"id": "gate", "source": "/dev/null", "type": "file"}

values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)


def toml_value(v: Any) -> bool:
    """Whether ``v`` could come out of tomllib (no None anywhere)."""
    if isinstance(v, list):
        return all(toml_value(x) for x in v)
    if isinstance(v, dict):
        return all(toml_value(x) for x in v.values())
    return v is not None


values = values.filter(toml_value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(key=st.sampled_from(KEYS), value=values)
def test_any_value_for_any_key_is_accepted_or_named(key: tuple[str, str], value: Any) -> None:
    section, name = key
    doc = {"cameras": [dict(CAMERA)], section: {name: value}}
    try:
        config.parse(doc)
    except ConfigError as err:
        assert err.errors and all(": " in e for e in err.errors)
        assert any(e.startswith(f"{section}.{name}:") or e.startswith(f"cameras[0].{section}.{name}:")
                   or e.startswith(f"{section}.") for e in err.errors), err.errors


@settings(max_examples=200, deadline=None)
@given(doc=st.dictionaries(st.text(max_size=12), values, max_size=4))
def test_arbitrary_documents_never_raise_anything_but_config_error(doc: dict[str, Any]) -> None:
    try:
        config.parse(doc)
    except ConfigError as err:
        assert err.errors
    # any other exception fails the test


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(KEYS), value=st.sampled_from(['"x"', "-1", "1e400", "[1, 2]", "{ a = 1 }", "true",
                                                         "99999999999", '"\\u0000"']))
def test_check_config_exits_2_naming_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             key: tuple[str, str], value: str) -> None:
    section, name = key
    path = tmp_path / "fuzz.toml"
    path.write_text(f'[[cameras]]\nid = "gate"\nsource = "/dev/null"\n[{section}]\n{name} = {value}\n')
    code = main(["check-config", "-c", str(path)])
    out = capsys.readouterr()
    assert "Traceback" not in out.err + out.out
    if code != 0:
        assert code == 2 and f"{section}.{name}" in out.err, out.err


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


def test_keys_cover_every_section_field() -> None:
    hints = {s: typing.get_type_hints(cls) for s, cls in SECTIONS.items()}
    assert len(KEYS) == sum(len(h) for h in hints.values())


def test_wrong_item_types_in_a_camera_list_are_named_not_a_crash() -> None:
    """Found by the fuzzer: ``relay.cameras = [1, 2]`` used to end in a TypeError."""
    with pytest.raises(ConfigError) as info:
        config.parse({"cameras": [dict(CAMERA)], "relay": {"cameras": [1, 2]}})
    assert info.value.errors[0].startswith("relay.cameras[0]:")
