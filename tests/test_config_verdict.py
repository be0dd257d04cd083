"""What ``plate-agent run`` refuses, ``plate-agent check-config`` refuses: a corpus of configs (valid,
invalid, fuzzed) goes through both, and every one gets the same verdict.

The run side is what ``cmd_run`` does before its loop: load the file, then build every part of the
service (rules file, relay, MQTT, webhooks, reader, outbox, detectors) without opening a camera.
A gpio relay gets gpiozero's MockFactory; serial relays in the corpus use pyserial's ``loop://``.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import certifi
import pytest
from gpiozero.pins.mock import MockFactory
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from agent.__main__ import load_run_config, main
from agent.errors import AgentError
from agent.service import Service
from tests.test_config import EXAMPLE

CAMERA = '[[cameras]]\nid = "gate"\nsource = "/dev/null"\ntype = "file"\n'
BASE = CAMERA + '[storage]\nstate_dir = "{tmp}/state"\n[status]\nenabled = false\n'
ALLOW = '[[rules.allow]]\nplate = "AB12 CDE"\n'
GOOD_CSV = "plate,label,list,valid_from,valid_until,schedule,cameras\nAB123CD,staff,allow,,,Mon-Fri 07:00-19:00,gate\n"

VALID = {
    "minimal": BASE,
    "example": EXAMPLE.read_text(),
    "deprecated keys": BASE + "[rules]\nmin_score = 0.6\npass_window_s = 3.0\n[crop]\nmax_uploads_per_pass = 3\n",
    "new tables": BASE + "[decision]\nmin_score = 0.6\nrearm_s = 0.0\n[upload]\npass_gap_s = 1.0\n",
    "gpio relay": BASE + '[relay]\ntype = "gpio"\npin = "GPIO17"\nactive_high = false\n',
    "gpio relay by board pin": BASE + '[relay]\ntype = "gpio"\npin = "BOARD11"\n',
    "serial relay": BASE + '[relay]\ntype = "serial"\nport = "loop://"\nprotocol = "at"\nchannel = 2\n',
    "raw serial relay": BASE + '[relay]\ntype = "serial"\nport = "loop://"\nprotocol = "raw"\n'
                               'on_bytes = "A0 01 01 A2"\noff_bytes = "A00100A1"\n',
    "mqtt": BASE + '[mqtt]\nenabled = true\nport = 1\nprefix = "site/gate"\nha_discovery = true\n'
                   'command_topic = true\ntls = true\nusername = "agent"\ncommand_min_interval_s = 2.0\n',
    "mqtt insecure command": BASE + '[mqtt]\nenabled = true\ncommand_topic = true\ninsecure_command = true\n',
    "mqtt tls": BASE + f'[mqtt]\nenabled = true\nport = 1\ntls = true\nca_file = "{certifi.where()}"\n',
    "webhooks": BASE + '[[webhooks]]\nurl = "http://127.0.0.1:1/a"\n[[webhooks]]\nurl = "https://x.invalid/b"\n'
                       'format = "multipart"\nsecret_header = "X-Webhook-Secret"\n',
    "sdk reader": BASE + '[reader]\ntype = "sdk"\nurl = "http://127.0.0.1:1/v1/plate-reader/"\n'
                         '[reader.config]\nmode = "fast"\nthreshold_d = 0.2\ntext_formats = ["[A-Z]{2}"]\n'
                         '[cameras.reader]\nconfig = { region = "strict" }\n',
    "cloud reader": BASE + '[reader]\ntype = "cloud"\nregions = ["gb"]\n',
    "schedules and dates": BASE + '[[rules.allow]]\nplate = "AB12 CDE"\n'
                                  'schedule = "Mon-Fri 07:00-19:00; Sat 08:00-12:00"\n'
                                  'valid_from = "2026-01-01"\nvalid_until = "2026-01-01"\n'
                                  '[[rules.deny]]\nplate = "XX-99.XXX"\n'
                                  'schedule = "Fri 22:00-24:00; Sat 00:00-06:00"\n'
                                  'valid_from = "2026-01-01T08:00"\n',
    "rules file": BASE + '[rules]\nfile = "{tmp}/good.csv"\n',
    "rules file with a bad row": BASE + '[rules]\nfile = "{tmp}/mixed.csv"\n',
    "model path": BASE + '[detector]\nmodel_path = "{model}"\n',
    "two cameras": BASE + '[cameras.motion]\nthreshold = 30\n[cameras.crop]\nmode = "vehicle"\n'
                          '[[cameras]]\nid = "exit"\nsource = "0"\n'
                          '[relay]\ntype = "gpio"\npin = "17"\ncameras = ["exit"]\n',
}

INVALID = {
    # each names the key the message must carry
    "schedule hour": (BASE + ALLOW + 'schedule = "Mon 25:00-26:00"\n', "rules.allow[0].schedule"),
    "schedule weekday": (BASE + ALLOW + 'schedule = "Funday 07:00-08:00"\n', "rules.allow[0].schedule"),
    "empty schedule window": (BASE + ALLOW + 'schedule = "Mon 07:00-07:00"\n', "rules.allow[0].schedule"),
    "impossible date": (BASE + ALLOW + 'valid_from = "2024-02-30"\n', "rules.allow[0].valid_from"),
    "date past the calendar": (BASE + ALLOW + 'valid_until = "9999-12-31"\n', "rules.allow[0].valid_until"),
    "until before from": (BASE + ALLOW + 'valid_from = "2026-02-01"\nvalid_until = "2026-01-01"\n',
                          "rules.allow[0].valid_until"),
    "plate without letters": (BASE + '[[rules.deny]]\nplate = " - "\n', "rules.deny[0].plate"),
    "TOML date in reader.config": (BASE + '[reader]\ntype = "sdk"\n[reader.config]\nsince = 2024-01-01\n',
                                   "reader.config.since"),
    "TOML time in a camera's reader.config": (BASE + '[cameras.reader]\nconfig = { at = [07:00:00] }\n',
                                              "cameras[0].reader.config.at[0]"),
    "topic prefix wildcard": (BASE + '[mqtt]\nenabled = true\nprefix = "site/+/gate"\n', "mqtt.prefix"),
    "discovery prefix wildcard": (BASE + '[mqtt]\ndiscovery_prefix = "ha/#"\n', "mqtt.discovery_prefix"),
    "topic prefix empty level": (BASE + '[mqtt]\nprefix = "site//gate"\n', "mqtt.prefix"),
    "discovery prefix empty level": (BASE + '[mqtt]\ndiscovery_prefix = "/homeassistant"\n', "mqtt.discovery_prefix"),
    "system topic prefix": (BASE + '[mqtt]\nprefix = "$SYS/x"\n', "mqtt.prefix"),
    "open command without TLS": (BASE + '[mqtt]\ncommand_topic = true\nusername = "agent"\n', "mqtt.command_topic"),
    "open command without a username": (BASE + '[mqtt]\ncommand_topic = true\ntls = true\n', "mqtt.command_topic"),
    "insecure_command alone": (BASE + '[mqtt]\ninsecure_command = true\n', "mqtt.insecure_command"),
    "open commands too close": (BASE + '[mqtt]\ncommand_min_interval_s = 0.0\n', "mqtt.command_min_interval_s"),
    "empty mqtt host": (BASE + '[mqtt]\nenabled = true\nhost = ""\n', "mqtt.host"),
    "gpio key on a serial relay": (BASE + '[relay]\ntype = "serial"\nport = "loop://"\npin = "17"\n', "relay.pin"),
    "serial key on a gpio relay": (BASE + '[relay]\ntype = "gpio"\npin = "17"\nbaud = 115200\n', "relay.baud"),
    "relay key with no relay": (BASE + '[relay]\nport = "loop://"\n', "relay.port"),
    "raw bytes on an lcus relay": (BASE + '[relay]\ntype = "serial"\nport = "loop://"\non_bytes = "A0"\n',
                                   "relay.on_bytes"),
    "serial URL pyserial does not know": (BASE + '[relay]\ntype = "serial"\nport = "usb://0"\n', "relay.port"),
    "pin off the header": (BASE + '[relay]\ntype = "gpio"\npin = "GPIO40"\n', "relay.pin"),
    "power pin": (BASE + '[relay]\ntype = "gpio"\npin = "BOARD1"\n', "relay.pin"),
    "missing rules file": (BASE + '[rules]\nfile = "{tmp}/missing.csv"\n', "rules.file"),
    "rules file without a good row": (BASE + '[rules]\nfile = "{tmp}/bad.csv"\n', "bad.csv:2"),
    "missing model": (BASE + '[detector]\nmodel_path = "{tmp}/none.tflite"\n', "detector.model_path"),
    "unreadable CA file": (BASE + '[mqtt]\nenabled = true\ntls = true\nca_file = "{tmp}/good.csv"\n',
                           "mqtt.ca_file"),
    "header name with a space": (BASE + '[[webhooks]]\nurl = "http://x"\nsecret_header = "X Secret"\n',
                                 "webhooks[0].secret_header"),
    "reader url scheme": (BASE + '[reader]\ntype = "sdk"\nurl = "ftp://127.0.0.1/"\n', "reader.url"),
    "no cameras": ('[storage]\nstate_dir = "{tmp}/state"\n', "cameras"),
    "old and new place": (BASE + "[rules]\nmin_score = 0.5\n[decision]\nmin_score = 0.6\n", "rules.min_score"),
    "per-camera upload": (BASE + "[cameras.upload]\npass_gap_s = 1.0\n", "cameras[0].upload.pass_gap_s"),
    "unknown kind": (BASE + '[crop]\nmode = "car"\n', "crop.mode"),
}


@pytest.fixture
def corpus_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "good.csv").write_text(GOOD_CSV)
    (tmp_path / "bad.csv").write_text("plate,label,list,valid_from,valid_until,schedule\nXY1,,allow,,,Mon 7:00-25:00\n")
    (tmp_path / "mixed.csv").write_text(GOOD_CSV + "XY1,,allow,,,Mon 07:00-25:00,\n")
    monkeypatch.setenv("PLATE_RECOGNIZER_TOKEN", "test-token")  # secrets come from the environment
    monkeypatch.setenv("WEBHOOK_SECRET", "s3cret")
    monkeypatch.setenv("HOME", str(tmp_path))  # the example's outbox would go under ~/.local/state
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    return tmp_path


def write(tmp: Path, text: str, name: str = "c.toml") -> Path:
    from agent.detect import bundled_model_path

    path = tmp / name
    path.write_text(text.replace("{tmp}", str(tmp)).replace("{model}", str(bundled_model_path())))
    return path


def check_config_accepts(path: Path) -> bool:
    code = main(["check-config", "-c", str(path)])
    assert code in (0, 2)
    return code == 0


def run_accepts(path: Path) -> bool:
    """``plate-agent run`` up to its loop: load, then build every part; no camera opens."""
    cfg = load_run_config(str(path))
    if cfg is None:
        return False
    service = Service(cfg, relay_kw={"pin_factory": MockFactory()} if cfg.relay.type == "gpio" else {})
    try:
        service.build()
    except AgentError:
        return False
    finally:
        service.close()
    return True


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_configs_pass_both(corpus_dir: Path, name: str) -> None:
    path = write(corpus_dir, VALID[name])
    assert check_config_accepts(path)
    assert run_accepts(path)


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_configs_fail_both_naming_the_key(corpus_dir: Path, capsys: pytest.CaptureFixture[str],
                                                  name: str) -> None:
    text, key = INVALID[name]
    path = write(corpus_dir, text)
    assert not check_config_accepts(path)
    err = capsys.readouterr().err
    assert key in err and "Traceback" not in err, err
    assert not run_accepts(path)


# ---------------------------------------------------------------- fuzzed


def toml(value: Any) -> str:
    """A TOML literal for the values the strategies below make."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)  # inf and nan are TOML too
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def mostly(valid: st.SearchStrategy[Any], edge: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Three draws in four from ``valid``: a config is accepted often enough for both sides to build."""
    return st.integers(0, 3).flatmap(lambda n: valid if n else edge)


days = st.sampled_from(["", "Mon ", "Mon-Fri ", "Sat,Sun ", "Fri-Mon ", "mon "])
ok_time = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.sampled_from([0, 30, 59]))
edge_time = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 26), st.sampled_from([0, 60, 99]))
schedules = mostly(
    st.builds(lambda d, a, b, more: f"{d}{a}-{b}{more}", days, ok_time, ok_time | st.just("24:00"),
              st.sampled_from(["", "; Sat 08:00-12:00", ";"])),
    st.builds(lambda d, a, b: f"{d}{a}-{b}", days | st.just("Funday "), edge_time, edge_time) | st.text(max_size=12),
)
dates = mostly(
    st.builds(lambda d, t: f"2026-03-{d:02d}{t}", st.integers(1, 31), st.sampled_from(["", "T08:00", " 23:59:59"])),
    st.builds(lambda y, m, d, t: f"{y:04d}-{m:02d}-{d:02d}{t}", st.sampled_from([1, 2026, 9999]),
              st.integers(0, 13), st.integers(0, 32), st.sampled_from(["", "T24:00", "T08"])),
)
plates = mostly(st.sampled_from(["AB12 CDE", "xy-99.zz", "A·1", "ABCDEFGHIJKLMNOP"]),
                st.text(alphabet="AB12 -._·#é", max_size=20))
json_leaves = (st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False, allow_infinity=False)
               | st.text(max_size=5))
json_values = st.recursive(
    mostly(json_leaves, st.dates() | st.times() | st.floats()),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["a", "b"]), inner, max_size=2),
    max_leaves=4,
)
topics = mostly(st.sampled_from(["site/gate", "a", "ha/"]), st.text(alphabet="ab/+#", max_size=6))
pins = mostly(st.sampled_from(["17", "GPIO17", "BCM27", "BOARD11", "J8:40", "WPI0"]),
              st.sampled_from(["GPIO28", "BOARD1", "x", "", "07"]))
RELAY_KEYS: dict[str, dict[str, st.SearchStrategy[Any]]] = {  # required, then optional (one of another type)
    "none": {},
    "gpio": {"pin": pins},
    "serial": {"port": mostly(st.just("loop://"), st.just("usb://0"))},
}
RELAY_OPTIONAL: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "none": {"pulse_s": st.just(0.5), "pin": pins},
    "gpio": {"active_high": st.booleans(), "port": st.just("loop://")},
    "serial": {"protocol": st.sampled_from(["lcus", "at", "raw"]), "on_bytes": st.sampled_from(["A00101A2", "zz"]),
               "off_bytes": st.just("A00100A1"), "baud": st.sampled_from([9600, 1]), "pin": pins},
}
relays = st.sampled_from(sorted(RELAY_KEYS)).flatmap(lambda kind: st.fixed_dictionaries(
    {"type": st.just(kind), **RELAY_KEYS[kind]}, optional=RELAY_OPTIONAL[kind]))
moved_keys = st.sampled_from(["min_score", "pass_window_s", "rearm_s"])


@st.composite
def fuzzed_configs(draw: st.DrawFn) -> tuple[str, str | None]:
    """BASE plus a few tables with values near the edge of what the agent takes; and a rules CSV."""
    entry = {"plate": draw(plates)}
    for key, strategy in (("schedule", schedules), ("valid_from", dates), ("valid_until", dates)):
        if draw(st.booleans()):
            entry[key] = draw(strategy)
    rules: dict[str, Any] = {"allow": [entry]}
    if draw(st.booleans()):
        rules[draw(moved_keys)] = 1.0
    csv_text = None
    if draw(st.booleans()):
        rules["file"] = "{tmp}/fuzz.csv"
        cells = [draw(plates), "", draw(st.sampled_from(["allow", "deny", "maybe", ""])), draw(dates), "",
                 draw(schedules), "gate"]
        csv_text = ",".join(json.dumps(c) for c in cells) + "\n"  # quoted: a cell may hold a comma
    tables = {"rules": rules}
    if draw(st.booleans()):
        tables["decision"] = {draw(moved_keys): 2.0}
    if draw(st.booleans()):
        tables["reader"] = {"type": "sdk", "url": "http://127.0.0.1:1/", "config": {"x": draw(json_values)}}
    if draw(st.booleans()):
        tables["mqtt"] = {"enabled": True, "port": 1, "prefix": draw(topics), "discovery_prefix": draw(topics)}
    if draw(st.booleans()):
        tables["relay"] = draw(relays)
    text = BASE + "".join(
        f"[{name}]\n" + "".join(f"{k} = {toml(v)}\n" for k, v in table.items()) for name, table in tables.items()
    )
    return text, csv_text


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(case=fuzzed_configs())
def test_fuzzed_configs_get_the_same_verdict_from_both(corpus_dir: Path, capsys: pytest.CaptureFixture[str],
                                                       case: tuple[str, str | None]) -> None:
    text, csv_text = case
    if csv_text is not None:
        (corpus_dir / "fuzz.csv").write_text(csv_text)
    path = write(corpus_dir, text)
    checked = check_config_accepts(path)
    event("accepted" if checked else "refused")  # --hypothesis-show-statistics: both are common
    assert "Traceback" not in capsys.readouterr().err
    assert run_accepts(path) == checked, text
