"""Camera faults through the whole agent: an RTSP server killed, frozen and brought back, and a
camera that sends corrupt frames. /status must say so, the watchdog must keep pinging (a dead
camera is not a wedged agent) and the agent must recover on its own."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from agent.errors import SourceError
from tests.faults.conftest import Running, agent_config, wait_until
from tests.fixtures_rtsp import RtspServer

pytestmark = [pytest.mark.faults, pytest.mark.slow]

FAST_CAMERA = {"read_timeout_s": 1.0, "open_timeout_s": 2.0, "reconnect_max_s": 1.0}


def rtsp_agent(tmp_path: Path, server: RtspServer, start_agent: Callable[..., Running]) -> Running:
    cfg = agent_config(tmp_path, cameras=[{"id": "gate", "source": server.url, **FAST_CAMERA}])
    agent = start_agent(cfg)
    wait_until(lambda: agent.status()[0] == 200, what="a healthy camera")
    return agent


def camera(agent: Running) -> dict:
    return agent.doc()["cameras"]["gate"]


def test_rtsp_server_killed_then_back(tmp_path: Path, rtsp_server: RtspServer, start_agent) -> None:
    agent = rtsp_agent(tmp_path, rtsp_server, start_agent)
    cam = camera(agent)
    assert cam["connected"] and cam["fps_in"] > 5 and cam["last_frame_age_s"] < 1.0

    rtsp_server.kill()
    code, doc = wait_until(lambda: (s := agent.status())[0] == 503 and s, what="503 after the kill")
    assert doc["ok"] is False and doc["cameras"]["gate"]["ok"] is False
    cam = wait_until(lambda: (c := camera(agent))["reconnects"] >= 2 and c, what="reconnect attempts")
    assert cam["connected"] is False and cam["last_error"]
    assert agent.service.watchdog.healthy()  # a dead camera is not a wedge: systemd must not restart us

    rtsp_server.start()
    wait_until(lambda: (s := agent.status())[0] == 200 and (cam := s[1]["cameras"]["gate"])["connected"]
               and cam["last_frame_age_s"] < 1.0 and cam["fps_in"] > 0, timeout_s=30, what="recovery, frames flowing")
    assert 'plate_agent_camera_reconnects_total{camera="gate"}' in agent.metrics()


def test_rtsp_server_frozen_then_resumed(tmp_path: Path, rtsp_server: RtspServer, start_agent) -> None:
    agent = rtsp_agent(tmp_path, rtsp_server, start_agent)
    rtsp_server.freeze()  # the TCP connection stays up; nothing arrives
    code, doc = wait_until(lambda: (s := agent.status())[0] == 503 and s, what="503 while frozen")
    assert doc["cameras"]["gate"]["last_frame_age_s"] > FAST_CAMERA["read_timeout_s"]
    wait_until(lambda: camera(agent)["stalls"] >= 1, what="the read watchdog firing")
    assert agent.service.watchdog.healthy()

    rtsp_server.resume()
    wait_until(lambda: (s := agent.status())[0] == 200 and s[1]["cameras"]["gate"]["last_frame_age_s"] < 1.0,
               timeout_s=30, what="recovery after resume, fresh frames")


class FlakyCamera:
    """A FrameSource: good frames, corrupt ones (wrong shape, wrong dtype, None) mixed in by ``mode``."""

    frame_interval_s = 1 / 15

    def __init__(self, state: dict) -> None:
        self.state = state
        self.n = 0
        self.good = np.full((360, 640, 3), 90, np.uint8)
        self.bad = [None, np.zeros((360, 640), np.uint8), np.zeros((360, 640, 3), np.float32),
                    np.zeros((0, 0, 3), np.uint8)]

    def open(self) -> None:
        self.state["opens"] += 1

    def read(self) -> object:
        self.n += 1
        mode = self.state["mode"]
        if mode == "good" or (mode == "mixed" and self.n % 2):
            return self.good
        if mode == "dead":
            raise SourceError("camera unplugged")
        return self.bad[self.n % len(self.bad)]

    def close(self) -> None:
        pass


def test_corrupt_frames_are_counted_and_a_garbage_stream_is_reopened(tmp_path: Path, start_agent) -> None:
    state = {"mode": "mixed", "opens": 0}
    lock = threading.Lock()

    def factory(cam):
        with lock:
            return FlakyCamera(state)

    cfg = agent_config(tmp_path, cameras=[{"id": "gate", "source": "fake://cam", **FAST_CAMERA}])
    agent = start_agent(cfg, source_factory=factory)
    code, doc = wait_until(lambda: (s := agent.status())[1]["cameras"]["gate"]["corrupt_frames"] >= 10 and s,
                           what="corrupt frames counted")
    cam = doc["cameras"]["gate"]
    assert code == 200 and cam["connected"] and cam["frames_processed"] > 0
    assert cam["reconnects"] == 0  # half the frames good: no reason to reopen

    state["mode"] = "garbage"  # nothing decodable: as dead as a silent stream
    wait_until(lambda: agent.status()[0] == 503, what="503 on a garbage-only stream")
    wait_until(lambda: state["opens"] >= 2 and camera(agent)["reconnects"] >= 1, what="a reopen")
    assert "decodable" in (camera(agent)["last_error"] or "")
    assert agent.service.watchdog.healthy() and agent.service.parts.camera("gate").pipeline.counters["errors"] == 0

    state["mode"] = "good"
    wait_until(lambda: (s := agent.status())[0] == 200 and s[1]["cameras"]["gate"]["connected"], what="recovery")
