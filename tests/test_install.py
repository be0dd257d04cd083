"""``plate-agent install`` / ``uninstall`` in a temporary root: the files, owners and commands it
would make, idempotency, the token kept off argv and output, and ``systemd-analyze verify``."""

from __future__ import annotations

import grp
import io
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.__main__ import run_config_errors
from agent.tools.hostsys import HostSystem, RootSystem
from agent.tools.install import (
    CONFIG,
    CONFIG_DIR,
    STATE_DIR,
    TOKEN_FILE,
    UNIT_PATH,
    data_file,
    exec_start,
    read_token,
    render_unit,
    run_install,
    run_uninstall,
)

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "tok-5f1c9a0e77d2"


def check(path: Path) -> list[str]:
    return run_config_errors(path)[1]


def fake_root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "group").write_text("root:x:0:\nvideo:x:44:\ndialout:x:20:pi\n")  # no gpio here
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/bash\n")
    return root


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else b"", p.stat().st_mode)
            for p in sorted(root.rglob("*"))}


def install(root: Path, token: str = "") -> tuple[int, RootSystem, str]:
    system, out = RootSystem(root), io.StringIO()
    rc = run_install(str(root), ask_token=True, check=check, stdin=io.StringIO(token + "\n"), out=out,
                     system=system)
    return rc, system, out.getvalue()


def test_install_writes_the_files_users_and_commands(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    rc, system, out = install(root, TOKEN)
    assert rc == 0, out
    assert system.commands == [
        ["useradd", "--system", "--user-group", "--home-dir", STATE_DIR, "--no-create-home",
         "--shell", "/usr/sbin/nologin", "plate-agent"],
        ["usermod", "--append", "--groups", "video,dialout", "plate-agent"],  # gpio does not exist here
        ["systemctl", "daemon-reload"],
        ["systemctl", "try-restart", "plate-agent.service"],
        ["systemctl", "enable", "--now", "plate-agent.service"],
    ]
    assert "no group gpio" in out and "journalctl -u plate-agent.service -f" in out
    assert "plate-agent:x:" in (root / "etc/passwd").read_text()
    assert "dialout:x:20:pi,plate-agent" in (root / "etc/group").read_text()
    cfg = root / CONFIG.lstrip("/")
    assert cfg.read_bytes() == (ROOT / "config.example.toml").read_bytes()
    assert cfg.stat().st_mode & 0o777 == 0o640
    tok = root / TOKEN_FILE.lstrip("/")
    assert tok.read_text() == TOKEN + "\n" and tok.stat().st_mode & 0o777 == 0o600
    assert (root / STATE_DIR.lstrip("/")).stat().st_mode & 0o777 == 0o750
    assert system.owners == {"/etc/plate-agent": ("root", "plate-agent"), STATE_DIR: ("plate-agent", "plate-agent"),
                             CONFIG: ("root", "plate-agent"), TOKEN_FILE: ("root", "root")}
    unit = (root / UNIT_PATH.lstrip("/")).read_text()
    assert f"ExecStart={exec_start()}\n" in unit and exec_start().startswith(sys.prefix)
    assert "SupplementaryGroups=video dialout\n" in unit
    assert "LoadCredential=plate_recognizer_token:/etc/plate-agent/plate_recognizer_token\n" in unit
    assert "mqtt_password" not in unit  # no such credential file: systemd would refuse to start
    assert TOKEN not in out and all(TOKEN not in " ".join(c) for c in system.commands)


def test_install_twice_changes_nothing(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    assert install(root, TOKEN)[0] == 0
    before = snapshot(root)
    rc, system, out = install(root)  # Enter at the prompt: keep the token
    assert rc == 0
    assert snapshot(root) == before
    assert "nothing to change" in out
    assert system.commands == [["systemctl", "enable", "--now", "plate-agent.service"]]  # a no-op when running
    assert system.owners == {"/etc/plate-agent": ("root", "plate-agent"), STATE_DIR: ("plate-agent", "plate-agent")}


def test_install_keeps_an_existing_config_and_restarts_on_a_new_token(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    cfg = root / CONFIG.lstrip("/")
    cfg.parent.mkdir(parents=True)
    mine = '[[cameras]]\nid = "gate"\nsource = "rtsp://10.0.0.2/s"\n'
    cfg.write_text(mine)
    assert install(root)[0] == 0
    assert cfg.read_text() == mine
    unit = (root / UNIT_PATH.lstrip("/")).read_text()
    assert "LoadCredential" not in unit  # no token yet
    rc, system, out = install(root, "new-token")
    assert rc == 0 and cfg.read_text() == mine
    unit = (root / UNIT_PATH.lstrip("/")).read_text()
    assert "LoadCredential=plate_recognizer_token" in unit and "console_password" not in unit
    assert system.commands[:2] == [["systemctl", "daemon-reload"], ["systemctl", "try-restart", "plate-agent.service"]]


def test_the_mqtt_and_console_passwords_present_are_passed_to_the_service(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    etc = root / CONFIG_DIR.lstrip("/")
    etc.mkdir(parents=True)
    (etc / "mqtt_password").write_text("broker-pw\n")
    (etc / "console_password").write_text("console-pw\n")
    assert install(root, TOKEN)[0] == 0
    unit = (root / UNIT_PATH.lstrip("/")).read_text()
    for name in ("plate_recognizer_token", "mqtt_password", "console_password"):
        assert f"LoadCredential={name}:/etc/plate-agent/{name}\n" in unit


def test_an_invalid_config_is_reported_and_nothing_starts(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    cfg = root / CONFIG.lstrip("/")
    cfg.parent.mkdir(parents=True)
    cfg.write_text('[relay]\npulse_s = -1\n')
    rc, system, out = install(root)
    assert rc == 2
    assert "relay.pulse_s" in out and "not started" in out
    assert not any(c[0] == "systemctl" for c in system.commands)


def test_uninstall_keeps_config_and_history_unless_purged(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    assert install(root, TOKEN)[0] == 0
    (root / STATE_DIR.lstrip("/") / "mqtt-outbox.sqlite3").write_bytes(b"x")
    system, out = RootSystem(root), io.StringIO()
    assert run_uninstall(str(root), purge=False, out=out, system=system) == 0
    assert system.commands == [["systemctl", "disable", "--now", "plate-agent.service"],
                               ["systemctl", "daemon-reload"]]
    assert not (root / UNIT_PATH.lstrip("/")).exists()
    assert (root / CONFIG.lstrip("/")).exists() and (root / TOKEN_FILE.lstrip("/")).exists()
    assert (root / STATE_DIR.lstrip("/") / "mqtt-outbox.sqlite3").exists()
    before = snapshot(root)
    system = RootSystem(root)
    assert run_uninstall(str(root), purge=False, out=io.StringIO(), system=system) == 0
    assert system.commands == [] and snapshot(root) == before  # twice: nothing more
    system = RootSystem(root)
    assert run_uninstall(str(root), purge=True, out=io.StringIO(), system=system) == 0
    assert system.commands == [["userdel", "plate-agent"]]
    assert not (root / "etc/plate-agent").exists() and not (root / STATE_DIR.lstrip("/")).exists()
    assert "plate-agent" not in (root / "etc/passwd").read_text() + (root / "etc/group").read_text()
    assert install(root)[0] == 0  # and back again


def test_cli_reads_the_token_from_stdin_and_never_prints_it(tmp_path: Path) -> None:
    root = fake_root(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-m", "agent", "install", "--root", str(root)], input=TOKEN + "\n",
                       capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "would run:" in p.stdout and "useradd --system" in p.stdout
    assert TOKEN not in p.stdout + p.stderr
    assert (root / TOKEN_FILE.lstrip("/")).read_text() == TOKEN + "\n"
    p = subprocess.run([sys.executable, "-m", "agent", "uninstall", "--root", str(root), "--purge"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0 and not (root / "etc/plate-agent").exists()


def test_the_token_prompt_does_not_echo() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    asked: list[str] = []
    assert read_token(Tty(), prompt=lambda text: asked.append(text) or f" {TOKEN} ") == TOKEN
    assert asked and "token" in asked[0]  # getpass.getpass (no echo) is the default prompt
    assert read_token(io.StringIO(f"{TOKEN}\n"), prompt=lambda _: pytest.fail("piped: no prompt")) == TOKEN


def test_the_written_unit_verifies(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze not installed (apt-get install systemd)")
    root = fake_root(tmp_path)
    assert install(root, TOKEN)[0] == 0
    unit = root / UNIT_PATH.lstrip("/")
    p = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout + p.stderr == "", p.stdout + p.stderr
    # the check can fail: a unit whose ExecStart is not there does not verify
    bad = tmp_path / "plate-agent.service"
    bad.write_text(unit.read_text().replace(exec_start(), "/nonexistent/bin/plate-agent run"))
    p = subprocess.run(["systemd-analyze", "verify", str(bad)], capture_output=True, text=True, timeout=60)
    assert "nonexistent" in p.stdout + p.stderr


def test_an_interpreter_under_home_is_left_readable() -> None:
    template = data_file("plate-agent.service").read_text()
    unit = render_unit(template, exec_line="/home/pi/venv/bin/plate-agent run", groups=[], credentials=[])
    assert "ProtectHome=read-only" in unit and "SupplementaryGroups" not in unit
    unit = render_unit(template, exec_line="/opt/plate-agent/venv/bin/plate-agent run", groups=["video"],
                       credentials=["mqtt_password"])
    assert "ProtectHome=yes" in unit
    assert "LoadCredential=mqtt_password:/etc/plate-agent/mqtt_password\n" in unit


def test_the_package_carries_the_files_install_writes() -> None:
    from setuptools.config.setupcfg import read_configuration

    [(folder, files)] = read_configuration(ROOT / "setup.cfg")["options"]["data_files"]
    assert folder.replace("_", "-") == "share/plate-agent"  # the reader spells option keys with "_"; wheels do not
    assert sorted(Path(f).name for f in files) == ["config.example.toml", "plate-agent.service"]
    assert all((ROOT / f).is_file() for f in files)
    assert data_file("config.example.toml").read_bytes() == (ROOT / "config.example.toml").read_bytes()


def test_the_host_system_changes_only_what_differs(tmp_path: Path) -> None:
    host, me = HostSystem(), os.getuid()
    target = str(tmp_path / "etc" / "unit")
    assert host.mkdir(str(tmp_path / "etc"), 0o750) and not host.mkdir(str(tmp_path / "etc"), 0o750)
    assert (tmp_path / "etc").stat().st_mode & 0o777 == 0o750
    assert host.write(target, b"a", 0o600) and not host.write(target, b"a", 0o600)
    assert host.write(target, b"a", 0o644) and host.write(target, b"b", 0o644)  # the mode, then the content
    assert Path(target).read_bytes() == b"b" and Path(target).stat().st_mode & 0o777 == 0o644
    user, group = pwd.getpwuid(me).pw_name, grp.getgrgid(os.getgid()).gr_name
    assert not host.chown(target, user, group)  # already theirs
    assert host.group_exists(group) and not host.group_exists("no-such-group-x1")
    assert host.user_groups("no-such-user-x1") is None
    assert host.remove(str(tmp_path / "etc")) and not host.remove(str(tmp_path / "etc"))
