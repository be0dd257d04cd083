"""Storage faults through the whole agent (drawn cars, real pipeline, contract server, MQTT with its
outbox): a file that is not a database, a damaged page, a read-only state directory and a full disk.
The promise: the agent starts, reads every plate and opens the gate; a damaged file is moved aside,
an unwritable directory leaves the outboxes in memory, and /status says so."""

from __future__ import annotations

import io
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gpiozero.pins.mock import MockFactory

from agent.events import JsonLinesSink
from agent.outbox import Outbox
from agent.read.outbox import FILENAME
from tests.faults.conftest import Running, agent_config, wait_until
from tests.faults.test_reader_faults import CARS, FAST_READER, events
from tests.fixtures_mqtt import free_port
from tests.prserver import PRServer

pytestmark = pytest.mark.faults

MQTT_FILE = "mqtt-outbox.sqlite3"


def mqtt_section() -> dict[str, Any]:
    """MQTT on, its broker away: every event waits in the MQTT outbox."""
    return {"enabled": True, "port": free_port(), "reconnect_min_s": 1.0, "reconnect_max_s": 1.0}


def reads_a_car(tmp_path: Path, clips: Callable[..., Path], server: PRServer,
                start_agent: Callable[..., Running]) -> tuple[Running, dict[str, Any]]:
    """Start the agent on an allowed car (the clip loops, so a loaded machine cannot miss it); wait
    for the gate to open; the status document after it."""
    server.texts.append("AB12CDE")
    cfg = agent_config(
        tmp_path,
        cameras=[{"id": "gate", "source": str(clips(CARS[:1])), "type": "file", "fps_max": 15.0, "loop": True}],
        reader={"type": "sdk", "url": server.url, **FAST_READER},
        rules={"allow": [{"plate": "AB12 CDE"}]},
        relay={"type": "gpio", "pin": "17", "pulse_s": 0.2, "cooldown_s": 0.0},
        mqtt=mqtt_section(),
    )
    out = io.StringIO()
    agent = start_agent(cfg, extra_sinks=[JsonLinesSink(out)], relay_kw={"pin_factory": MockFactory()})
    wait_until(lambda: any(e["plate"] == "AB12CDE" and e["action"] == "open" for e in events(out))
               and agent.doc()["relay"]["pulses"] >= 1, timeout_s=60, what="the car read and the gate opened")
    doc = agent.doc()
    assert agent.service.watchdog.healthy()
    assert doc["mqtt"]["outbox"] >= 1  # the event waits for the broker
    assert not doc["reader"]["errors"].get("internal"), doc["reader"]
    return agent, doc


def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


def test_files_that_are_not_databases_are_moved_aside(
        tmp_path: Path, clips, pr_sdk_server: PRServer, start_agent) -> None:
    state(tmp_path).mkdir()
    for name in (FILENAME, MQTT_FILE):
        (state(tmp_path) / name).write_bytes(b"this is not an sqlite header" * 100)
    agent, doc = reads_a_car(tmp_path, clips, pr_sdk_server, start_agent)
    outbox = doc["reader"]["outbox"]
    assert outbox["storage"] == "disk" and outbox["moved_aside"], outbox
    assert doc["mqtt"]["outbox_storage"] == "disk" and doc["mqtt"]["outbox_moved_aside"]
    for name in (FILENAME, MQTT_FILE):
        aside = list(state(tmp_path).glob(f"{name}.damaged-*"))
        assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not"), aside
    assert doc["ok"], doc


def test_a_damaged_page_is_moved_aside_and_the_reader_thread_lives(
        tmp_path: Path, clips, pr_sdk_server: PRServer, start_agent) -> None:
    path = state(tmp_path) / FILENAME
    box = Outbox(path).open()
    for i in range(300):
        box.put("gate", bytes([i % 256]) * 3000, {"not": "a crop"})
    box.close()
    size = path.stat().st_size
    with open(path, "r+b") as f:  # a bad sector in the middle of the file
        f.seek(size // 2)
        f.write(b"\xff" * 8192)
    agent, doc = reads_a_car(tmp_path, clips, pr_sdk_server, start_agent)
    assert doc["reader"]["outbox"]["moved_aside"] and doc["reader"]["outbox"]["depth"] == 0
    assert len(list(state(tmp_path).glob(f"{FILENAME}.damaged-*"))) == 1


def mount_tmpfs(where: Path, options: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True)
    if proc.returncode != 0:
        why = f"cannot mount a tmpfs here (needs root): {proc.stderr.strip()}"
        if os.environ.get("PLATE_AGENT_REQUIRE_ROOT") == "1":  # CI runs as root: a full disk must be tested
            pytest.fail(why)
        pytest.skip(why)


@pytest.fixture
def mounts() -> Iterator[list[Path]]:
    done: list[Path] = []
    yield done
    for m in reversed(done):
        subprocess.run(["umount", "-l", str(m)], check=False)


def in_memory(doc: dict[str, Any], code: int) -> None:
    """Both outboxes in memory, said on /status (503) and in the summary line."""
    outbox = doc["reader"]["outbox"]
    assert outbox["storage"] == "memory" and outbox["storage_error"], outbox
    assert doc["mqtt"]["outbox_storage"] == "memory" and doc["mqtt"]["outbox_storage_error"]
    assert code == 503 and doc["ok"] is False
    assert "IN MEMORY" in doc["summary"]


def test_a_read_only_state_directory_leaves_the_outboxes_in_memory(
        tmp_path: Path, clips, pr_sdk_server: PRServer, start_agent, mounts: list[Path]) -> None:
    mount_tmpfs(state(tmp_path), "ro,size=1m")  # even root cannot write here
    mounts.append(state(tmp_path))
    agent, _ = reads_a_car(tmp_path, clips, pr_sdk_server, start_agent)
    code, doc = agent.status()
    in_memory(doc, code)
    assert "Read-only file system" in doc["reader"]["outbox"]["storage_error"], doc["reader"]["outbox"]


def test_a_full_disk_leaves_the_outboxes_in_memory(
        tmp_path: Path, clips, pr_sdk_server: PRServer, start_agent, mounts: list[Path]) -> None:
    mount_tmpfs(state(tmp_path), "size=64k")
    mounts.append(state(tmp_path))
    try:
        with open(state(tmp_path) / "filler", "wb") as f:
            f.write(b"\0" * 128 * 1024)
    except OSError:
        pass  # full
    agent, _ = reads_a_car(tmp_path, clips, pr_sdk_server, start_agent)
    code, doc = agent.status()
    in_memory(doc, code)
    assert "full" in doc["reader"]["outbox"]["storage_error"], doc["reader"]["outbox"]
    assert "reader_outbox_in_memory 1" in agent.metrics()


