"""``plate-agent doctor`` against real local parts: the RTSP test server, mosquitto (plain, and TLS
with a user), the Plate Recognizer contract server (cloud and SDK) and the emulated LCUS relay.
Each check is seen passing and failing, and the exit code follows the checks the config needs."""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from agent.tools.doctor import Options, run_doctor
from tests.faults.test_security import make_ca_and_server_cert
from tests.fixtures_mqtt import Broker, Subscriber, require_tools
from tests.fixtures_pr import PR_TOKEN
from tests.fixtures_rtsp import RtspServer, free_port
from tests.prserver import PRServer
from tests.sinks.lcus import LcusEmulator


def toml(value: Any) -> str:
    return json.dumps(value)  # strings, numbers and booleans are written alike


def write_config(folder: Path, cameras: list[dict[str, Any]], **tables: dict[str, Any]) -> Path:
    tables.setdefault("storage", {"state_dir": str(folder / "state")})
    lines = []
    for cam in cameras:
        lines += ["[[cameras]]", *(f"{k} = {toml(v)}" for k, v in cam.items())]
    for name, table in tables.items():
        lines += [f"[{name}]", *(f"{k} = {toml(v)}" if not isinstance(v, list) else f"{k} = {json.dumps(v)}"
                                 for k, v in table.items())]
    path = folder / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def doctor(path: Path, **opts: Any) -> tuple[int, dict[str, dict[str, Any]]]:
    out = io.StringIO()
    opts.setdefault("environ", {})  # no token or password from this process's environment
    opts.setdefault("clock_source", lambda: "kernel")
    rc = run_doctor(str(path), Options(**opts), as_json=True, out=out)
    doc = json.loads(out.getvalue())
    checks = {c["name"]: c for c in doc["checks"]}
    assert doc["ok"] == (rc == 0)
    return rc, checks


def statuses(checks: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {name: c["status"] for name, c in checks.items()}


@pytest.fixture
def emulator():
    emu = LcusEmulator()
    yield emu
    emu.close()


@pytest.mark.slow
def test_every_check_passes_against_working_parts(tmp_path: Path, rtsp_server: RtspServer, pr_server: PRServer,
                                                  mqtt_broker: Broker, emulator: LcusEmulator) -> None:
    (tmp_path / "plate_recognizer_token").write_text(PR_TOKEN + "\n")  # where install stores it
    path = write_config(
        tmp_path, [{"id": "gate", "source": rtsp_server.url}],
        reader={"type": "cloud", "url": pr_server.url},
        mqtt={"enabled": True, "port": mqtt_broker.port, "prefix": "pa", "client_id": "gate-agent"},
        relay={"type": "serial", "port": emulator.port, "pulse_s": 0.1, "cooldown_s": 0.0})
    watcher = Subscriber(mqtt_broker.port, "pa/#")
    try:
        rc, checks = doctor(path, pulse=True)
        assert rc == 0, checks
        assert statuses(checks) == {"config": "pass", "camera gate": "pass", "detector": "pass",
                                    "reader cloud": "pass", "mqtt": "pass", "relay": "pass", "clock": "pass",
                                    "state directory": "pass"}
        cam = checks["camera gate"]["data"]
        assert (cam["width"], cam["height"]) == (640, 360) and cam["codec"].lower() == "h264"
        assert 5 < cam["fps"] < 60 and 0 < cam["first_frame_s"] < 10
        assert "plate found" in checks["detector"]["detail"]
        assert checks["reader cloud"]["data"]["limit"] == 2500
        assert "2500" in checks["reader cloud"]["detail"] and "left" in checks["reader cloud"]["detail"]
        assert pr_server.lookups() == []  # no paid read without --read
        assert watcher.get().topic == "pa/doctor"  # it published, under its own client id
        emulator.wait_for(0, after=2)
        assert [f[2] for f in emulator.frames][:3] == [0, 1, 0]  # off, the pulse, off
    finally:
        watcher.close()


@pytest.mark.slow
def test_every_check_fails_with_a_fix(tmp_path: Path, pr_server: PRServer, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "plate_recognizer_token").write_text("not-the-token\n")
    junk = tmp_path / "model.tflite"
    junk.write_bytes(b"not a model")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    rules = tmp_path / "rules.csv"
    rules.write_text("plate,label,list,valid_from,valid_until,schedule,cameras\n"
                     "AB12CDE,,allow,,,Mon-Sun 07:00-19:00,\n")
    path = write_config(
        tmp_path, [{"id": "gate", "source": f"rtsp://127.0.0.1:{free_port()}/stream", "open_timeout_s": 2.0}],
        detector={"model_path": str(junk)},
        reader={"type": "cloud", "url": pr_server.url},
        mqtt={"enabled": True, "port": free_port()},
        relay={"type": "serial", "port": str(tmp_path / "ttyUSB9"), "pulse_s": 0.1},
        rules={"file": str(rules)},
        storage={"state_dir": str(blocker / "state")})
    rc, checks = doctor(path, pulse=True, clock_source=lambda: "")
    assert rc == 1
    assert statuses(checks) == {"config": "pass", "camera gate": "fail", "detector": "fail", "reader cloud": "fail",
                                "mqtt": "fail", "relay": "fail", "clock": "fail", "state directory": "fail"}
    assert all(c["hint"] for c in checks.values() if c["status"] == "fail")
    assert "token refused" in checks["reader cloud"]["detail"]
    assert "1 dated or scheduled rule" in checks["clock"]["detail"]
    # the text form: one line per check, a fix under each failure, the summary last
    out = io.StringIO()
    assert run_doctor(str(path), Options(environ={}, clock_source=lambda: ""), out=out) == 1
    text = out.getvalue().splitlines()
    assert text[0].startswith("PASS  config:") and text[1].startswith("FAIL  camera gate:")
    assert text[2].startswith("      fix: ") and text[-1].startswith("6 check(s) failed: camera gate, detector")
    assert any(line.startswith("SKIP  relay:") and "--pulse" in line for line in text)  # not moved unasked


def test_an_invalid_config_is_exit_2(tmp_path: Path) -> None:
    path = write_config(tmp_path, [{"id": "gate", "source": "rtsp://x/y"}], relay={"pulse_s": -1.0})
    rc, checks = doctor(path)
    assert rc == 2 and statuses(checks) == {"config": "fail"} and "relay.pulse_s" in checks["config"]["detail"]


def test_unused_parts_are_skipped_and_an_unsynchronised_clock_is_only_a_warning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import agent.tools.doctor as doctor_mod

    monkeypatch.setattr(doctor_mod, "check_camera", lambda cam: {"detail": "stub"})
    path = write_config(tmp_path, [{"id": "gate", "source": "rtsp://x/y"}])
    rc, checks = doctor(path, clock_source=lambda: "")
    assert rc == 0
    assert {k: v for k, v in statuses(checks).items() if v != "pass"} == {
        "reader": "skip", "mqtt": "skip", "relay": "skip", "clock": "warn"}
    # too little room for the outboxes
    monkeypatch.setattr(doctor_mod.shutil, "disk_usage", lambda p: type("U", (), {"free": 5e6})())
    rc, checks = doctor(path)
    state = checks["state directory"]
    assert rc == 1 and state["status"] == "fail" and "5 MB free" in state["detail"]


def test_quota_used_up_fails_and_the_sdk_shows_its_version(tmp_path: Path, pr_sdk_server: PRServer) -> None:
    from agent.config import parse
    from agent.tools.doctor_parts import Verdict, check_reader

    cfg = parse({"reader": {"type": "sdk", "url": pr_sdk_server.url}})
    got = check_reader(cfg, {}, paid_read=False)
    assert "SDK 1.3.8" in got["detail"] and got["version"] == "1.3.8"
    assert pr_sdk_server.lookups() == []
    got = check_reader(cfg, {}, paid_read=True)  # --read: one lookup of the test image
    assert len(pr_sdk_server.lookups()) == 1 and got["read"] == ["ABC123"]

    cloud = PRServer(token=PR_TOKEN, total_calls=100).start()
    try:
        cloud.calls = 100
        cfg = parse({"reader": {"type": "cloud", "url": cloud.url}})
        with pytest.raises(Verdict, match="100 lookups used of 100"):
            check_reader(cfg, {"PLATE_RECOGNIZER_TOKEN": PR_TOKEN}, paid_read=False)
        with pytest.raises(Verdict, match="PLATE_RECOGNIZER_TOKEN"):  # no token anywhere
            check_reader(cfg, {}, paid_read=False)
    finally:
        cloud.close()


@pytest.mark.slow
def test_mqtt_over_tls_with_a_user(tmp_path: Path) -> None:
    from agent.config import parse
    from agent.tools.doctor import credentials_env
    from agent.tools.doctor_parts import Verdict, check_mqtt

    require_tools("mosquitto", "openssl", "mosquitto_passwd")
    ca, cert, key = make_ca_and_server_cert(tmp_path)
    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwd), "agent", "agent-pw-1"], check=True,
                   capture_output=True)
    broker = Broker(tmp_path, f"cafile {ca}\ncertfile {cert}\nkeyfile {key}\npassword_file {passwd}")
    broker.start()
    try:
        etc = tmp_path / "etc"
        etc.mkdir()
        (etc / "mqtt_password").write_text("agent-pw-1\n")
        env = credentials_env(str(etc / "config.toml"), {})
        assert env == {"CREDENTIALS_DIRECTORY": str(etc)}
        mqtt = {"enabled": True, "port": broker.port, "host": "127.0.0.1", "tls": True, "ca_file": str(ca),
                "username": "agent"}
        assert "(TLS): connected and published" in check_mqtt(parse({"mqtt": mqtt}), env)["detail"]
        (etc / "mqtt_password").write_text("wrong\n")
        with pytest.raises(Verdict, match="refused"):
            check_mqtt(parse({"mqtt": mqtt}), env)
        with pytest.raises(Verdict, match="SSL|certificate"):  # the system CAs do not know this broker
            check_mqtt(parse({"mqtt": {**mqtt, "ca_file": ""}}), env)
    finally:
        broker.stop()
