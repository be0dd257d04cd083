"""A start that fails early still drives the relay off: ``plate-agent run`` with a broken rules file, a
broken section, a broken relay key or unreadable TOML, against a serial relay on the LCUS emulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.failsafe import SAVED
from tests.faults.conftest import wait_until
from tests.sinks.lcus import LcusEmulator

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parents[2]
CAMERA = '[[cameras]]\nid = "gate"\nsource = "{clip}"\ntype = "file"\n'


@pytest.fixture
def lcus() -> Iterator[LcusEmulator]:
    emu = LcusEmulator()
    yield emu
    emu.close()


def run_agent(tmp_path: Path, toml: str, timeout_s: float = 60.0) -> tuple[int, str]:
    """``plate-agent run`` until it exits; its exit status and log. The state directory comes from
    systemd's variable, so that a config that cannot be read still has one."""
    cfg = tmp_path / "agent.toml"
    cfg.write_text(toml)
    env = {**os.environ, "STATE_DIRECTORY": str(tmp_path / "state")}
    proc = subprocess.run([sys.executable, "-m", "agent", "run", "-c", str(cfg)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout_s)
    return proc.returncode, proc.stderr


def relay(port: str, extra: str = "") -> str:
    return f'[relay]\ntype = "serial"\nport = "{port}"\nprotocol = "lcus"\nchannel = 1\n{extra}'


@pytest.mark.parametrize("broken", [
    '[rules]\nfile = "{tmp}/rules-typo.csv"\n',  # the rules file cannot be read
    '[rules]\nfile = "{tmp}/rules.csv"\n',  # a row of it is wrong
    '[motion]\nthreshold_typo = 3\n',  # an unknown key in another section
], ids=["missing-rules-file", "bad-rules-row", "bad-section"])
def test_a_broken_config_drives_the_latched_relay_off_before_exiting(
        tmp_path: Path, lcus: LcusEmulator, broken: str) -> None:
    (tmp_path / "rules.csv").write_text("plate,label,list\nAB12CDE,Alice,alow\n")
    lcus.on = True  # latched on by a pulse the crashed agent never ended
    toml = CAMERA.format(clip=tmp_path / "none.mp4") + broken.format(tmp=tmp_path) + relay(lcus.port)
    code, log = run_agent(tmp_path, toml)
    assert code != 0, log
    lcus.wait_for(0, timeout=5.0)
    assert not lcus.on and not lcus.errors
    assert all(f[2] == 0 for f in lcus.frames), lcus.frames
    assert "relay driven off before start-up" in log


def test_a_bad_relay_timing_key_still_drives_it_off(tmp_path: Path, lcus: LcusEmulator) -> None:
    lcus.on = True
    toml = CAMERA.format(clip=tmp_path / "none.mp4") + relay(lcus.port, "pulse_s = -1.0\ncameras = 3\n")
    code, log = run_agent(tmp_path, toml)
    assert code == 2 and "relay.pulse_s" in log, log
    lcus.wait_for(0, timeout=5.0)
    assert not lcus.on


def test_unreadable_toml_uses_the_last_good_relay_settings(tmp_path: Path, lcus: LcusEmulator) -> None:
    good = CAMERA.format(clip=tmp_path / "none.mp4") + relay(lcus.port)
    cfg, saved = tmp_path / "agent.toml", tmp_path / "state" / SAVED
    cfg.write_text(good)
    proc = subprocess.Popen([sys.executable, "-m", "agent", "run", "-c", str(cfg)], cwd=ROOT,
                            env={**os.environ, "STATE_DIRECTORY": str(tmp_path / "state")},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(saved.exists, timeout_s=30, what="the relay settings kept by a start that loaded")
    finally:
        proc.terminate()
        proc.wait(10)
    assert json.loads(saved.read_text())["port"] == lcus.port

    frames = len(lcus.frames)
    lcus.on = True
    code, log = run_agent(tmp_path, good.replace("[relay]", "[relay"))  # a typo: not TOML any more
    assert code == 2 and "invalid TOML" in log, log
    assert "using the last good relay settings" in log, log
    lcus.wait_for(0, after=frames, timeout=5.0)
    assert not lcus.on
