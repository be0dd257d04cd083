"""The whole agent: a drawn clip through the real pipeline (file source, motion gate, bundled
detector, crops, the SDK reader against the contract server, decisions, relay, webhook), plus the
process lifecycle (SIGTERM while streaming, clean start failures)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from agent import config
from agent.events import JsonLinesSink
from agent.tools.scene import SceneSpec, write_clip
from agent.service import Service
from tests.sinks.test_webhook import Server as WebhookServer

ROOT = Path(__file__).resolve().parent.parent
PLATES = ("AB12 CDE", "XX99 XXX", "AB12 CDF")  # allowed, denied, a look-alike one character off


def short_scene(plates) -> SceneSpec:
    return SceneSpec(plates=plates, lead_in_s=1.0, drive_in_s=1.0, stop_s=1.0, drive_out_s=0.7, gap_s=1.5,
                     clock_overlay=True, noise_sigma=2.0)


@pytest.fixture
def webhook():
    server = WebhookServer()
    yield server
    server.close()


def test_three_cars_give_one_event_each_and_only_the_allowed_one_opens(tmp_path, pr_sdk_server, webhook):
    clip = tmp_path / "gate.mp4"
    truths = write_clip(short_scene(PLATES), clip)
    pr_sdk_server.texts.extend(p.replace(" ", "") for p in PLATES)  # answers in arrival order
    cfg = config.parse({
        "cameras": [{"id": "gate", "source": str(clip), "type": "file", "fps_max": 15.0}],
        "reader": {"type": "sdk", "url": pr_sdk_server.url, "rate_per_s": 0.0},
        # cars come 4 s apart here; a pass ends 2 s after its last read
        "rules": {"allow": [{"plate": "AB12 CDE", "label": "Alice"}], "deny": [{"plate": "XX99 XXX"}]},
        "decision": {"pass_window_s": 2.0},
        "relay": {"type": "gpio", "pin": "17", "pulse_s": 0.3, "cooldown_s": 0.0},
        "webhooks": [{"url": webhook.url}],
        "storage": {"state_dir": str(tmp_path / "state")},
        "status": {"port": 0},  # a free port: another agent may hold the default
    })
    factory = MockFactory()
    out = io.StringIO()
    service = Service(cfg, extra_sinks=[JsonLinesSink(out)], stop_when_sources_end=True,
                      relay_kw={"pin_factory": factory})
    service.start()
    try:
        assert service.run() == 0
        stats = service.report.stats()
    finally:
        service.close()
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["plate"] for e in events if e["type"] == "new"] == [p.replace(" ", "") for p in PLATES]
    by_plate = {e["plate"]: e for e in events}
    assert by_plate["AB12CDE"]["action"] == "open" and "Alice" in json.dumps(by_plate["AB12CDE"])
    assert by_plate["XX99XXX"]["action"] == "deny"
    assert by_plate["AB12CDF"]["action"] == "none"  # a look-alike never opens by default
    # one paid read per vehicle, one pulse, one webhook per event
    assert len(pr_sdk_server.lookups()) == len(truths)
    states = [s.state for s in factory.pin(17).states]
    assert states.count(True) == 1 and states[-1] is False
    assert len(webhook.requests) == len(events)
    cam = stats["cameras"]["gate"]
    assert cam["uploads"] == 3 and cam["motion_frames"] < cam["frames"]


def test_service_close_leaves_no_thread(tmp_path):
    clip = tmp_path / "one.mp4"
    write_clip(short_scene(("KX52 ODV",)), clip)
    before = set(threading.enumerate())
    cfg = config.parse({
        "cameras": [{"id": "gate", "source": str(clip), "type": "file", "loop": True}],
        "storage": {"state_dir": str(tmp_path / "state")},
        "status": {"port": 0},  # a free port: another agent may hold the default
    })
    service = Service(cfg)
    service.start()
    time.sleep(1.0)
    t0 = time.monotonic()
    service.close()
    assert time.monotonic() - t0 < 5.0
    leftover = [t.name for t in set(threading.enumerate()) - before if t.is_alive()]
    assert leftover == []


def agent_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "agent", *args]


def write_config(tmp_path: Path, source: str, extra: str = "") -> Path:
    p = tmp_path / "agent.toml"
    p.write_text(f'[[cameras]]\nid = "gate"\nsource = "{source}"\nread_timeout_s = 3.0\n'
                 f'[storage]\nstate_dir = "{tmp_path / "state"}"\n[status]\nport = 0\n{extra}')
    return p


@pytest.mark.slow
def test_sigterm_while_streaming_exits_0_within_5_s(tmp_path, rtsp_server):
    cfg = write_config(tmp_path, rtsp_server.url)
    proc = subprocess.Popen(agent_cmd("run", "-c", str(cfg)), cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        lines = []
        assert proc.stderr is not None
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            lines.append(line)
            if "agent started" in line:
                break
        assert any("agent started" in x for x in lines), lines
        time.sleep(3.0)  # streaming
        assert proc.poll() is None
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=10)
        took = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    rest = proc.stderr.read()
    assert rc == 0 and took < 5.0, (rc, took, rest[-2000:])
    assert "Traceback" not in rest and "agent stopped" in rest


def test_missing_model_is_a_clear_start_failure(tmp_path):
    cfg = write_config(tmp_path, str(tmp_path / "x.mp4"), '[detector]\nmodel_path = "/nonexistent/plates.tflite"\n')
    proc = subprocess.run(agent_cmd("run", "-c", str(cfg)), cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 2  # the loader finds it, so check-config refuses it too
    assert "detector.model_path" in proc.stderr and "/nonexistent/plates.tflite" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_rules_file_is_a_clear_start_failure(tmp_path):
    rules = tmp_path / "rules.csv"
    rules.write_text("plate,label,list\nAB12CDE,Alice,sometimes\n")
    cfg = write_config(tmp_path, str(tmp_path / "x.mp4"), f'[rules]\nfile = "{rules}"\n')
    proc = subprocess.run(agent_cmd("run", "-c", str(cfg)), cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 2  # the loader reads the file too: check-config refuses it as well
    assert "rules.csv:2" in proc.stderr and "Traceback" not in proc.stderr


def test_demo_prints_events_and_writes_crops(tmp_path, monkeypatch):
    """The README's first command, minus the install: events on stdout, crops on disk."""
    env = {k: v for k, v in os.environ.items() if k != "PLATE_RECOGNIZER_TOKEN"}
    proc = subprocess.run(agent_cmd("demo", "--out", str(tmp_path / "demo")), cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(events) == 2 and all(e["read"]["dscore"] > 0.3 for e in events)
    assert "PLATE_RECOGNIZER_TOKEN is not set" in proc.stderr
    assert len(list((tmp_path / "demo" / "crops").glob("*.jpg"))) == 2


def test_a_part_that_cannot_start_closes_every_part_built_before_it(tmp_path, webhook):
    """The detector is built after the relay, the webhook and the reader: when it fails, those are
    closed again (the relay driven off and its pin released, no thread left behind)."""
    from gpiozero import OutputDevice

    from agent.errors import AgentError

    before = set(threading.enumerate())
    cfg = config.parse({
        "cameras": [{"id": "gate", "source": str(tmp_path / "x.mp4"), "type": "file"}],
        "detector": {"model_path": str(tmp_path / "missing.tflite")},
        "relay": {"type": "gpio", "pin": "17"},
        "webhooks": [{"url": webhook.url}],
        "reader": {"type": "sdk", "url": "http://127.0.0.1:9/"},
        "storage": {"state_dir": str(tmp_path / "state")},
        "status": {"port": 0},  # a free port: another agent may hold the default
    })
    factory = MockFactory()
    service = Service(cfg, relay_kw={"pin_factory": factory})
    with pytest.raises(AgentError, match="missing.tflite"):
        service.start()
    assert service.closers == []
    assert factory.pin(17).state is False
    OutputDevice(17, pin_factory=factory).close()  # the pin is free again
    assert [t.name for t in set(threading.enumerate()) - before if t.is_alive()] == []
