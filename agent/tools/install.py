"""``plate-agent install`` / ``uninstall``: the system user, its folders, the unit file, a starting
config and the token credential, then ``check-config`` and the service enabled and started.

Every effect goes through a ``System`` (hostsys.py), so a run against a temporary root records
what it would do. Idempotent: a second run writes nothing and adds nobody.
"""

from __future__ import annotations

import getpass
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from .hostsys import System

USER = "plate-agent"
GROUPS = ("video", "gpio", "dialout")  # cameras, GPIO, USB relay boards; only those that exist
CONFIG_DIR = "/etc/plate-agent"
CONFIG = f"{CONFIG_DIR}/config.toml"
STATE_DIR = "/var/lib/plate-agent"
UNIT = "plate-agent.service"
UNIT_PATH = f"/etc/systemd/system/{UNIT}"
CREDENTIALS = ("plate_recognizer_token", "mqtt_password", "console_password")  # LoadCredential= for those present
TOKEN_FILE = f"{CONFIG_DIR}/plate_recognizer_token"
DATA_FILES = {"config.example.toml": "config.example.toml", "plate-agent.service": "systemd/plate-agent.service"}


def data_file(name: str) -> Path:
    """A file ``pip install`` puts in ``<prefix>/share/plate-agent``; in a checkout, the repository's."""
    installed = Path(sys.prefix) / "share" / "plate-agent" / name
    if installed.is_file():
        return installed
    checkout = Path(__file__).resolve().parents[2] / DATA_FILES[name]
    if checkout.is_file():
        return checkout
    raise FileNotFoundError(f"{name}: not in {installed.parent} nor in a checkout (reinstall the package)")


def exec_start(prefix: str = sys.prefix, executable: str = sys.executable) -> str:
    """The agent of the environment running this command, as systemd's ExecStart."""
    script = Path(prefix) / "bin" / "plate-agent"
    argv = [str(script)] if script.is_file() else [executable, "-m", "agent"]
    argv += ["run", "-c", CONFIG]
    return " ".join(f'"{a}"' if re.search(r"\s", a) else a for a in argv)


def render_unit(template: str, *, exec_line: str, groups: list[str], credentials: list[str]) -> str:
    """The shipped unit with this machine's ExecStart, groups and credentials."""
    text = re.sub(r"(?m)^ExecStart=.*$", lambda _: f"ExecStart={exec_line}", template)
    text = re.sub(r"(?m)^SupplementaryGroups=.*\n", (f"SupplementaryGroups={' '.join(groups)}\n" if groups else ""),
                  text)
    text = re.sub(r"(?m)^#? ?LoadCredential=.*\n", "", text)
    creds = "".join(f"LoadCredential={c}:{CONFIG_DIR}/{c}\n" for c in credentials)
    text = text.replace("# secrets: never in the config file\n", "# secrets: never in the config file\n" + creds)
    if re.match(r"/(home|root)/", exec_line.strip('"')):  # ProtectHome=yes would hide the interpreter
        text = text.replace("ProtectHome=yes", "ProtectHome=read-only")
    return text


def read_token(stdin: TextIO, prompt: Callable[[str], str] = getpass.getpass) -> str:
    """The token from a pipe, or typed at a prompt that does not echo; "" keeps the current one."""
    if stdin.isatty():
        return prompt("Plate Recognizer token (Enter: keep the current one, or none): ").strip()
    return stdin.readline().strip()


@dataclass
class Report:
    changes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    restart: bool = False  # the unit or a credential changed: a running service must start again

    def did(self, changed: bool, what: str) -> None:
        if changed:
            self.changes.append(what)


def install(system: System, check: Callable[[Path], list[str]], *, token: str = "",
            exec_line: str | None = None) -> tuple[Report, list[str]]:
    """Everything but the service start; returns the report and the errors ``check`` (the rules of
    ``check-config``) finds in the config ([] = valid)."""
    rep = Report()
    groups = [g for g in GROUPS if system.group_exists(g)]
    missing = sorted(set(GROUPS) - set(groups))
    if missing:
        rep.notes.append(f"no group {', '.join(missing)} on this machine: left out")
    have = system.user_groups(USER)
    if have is None:
        system.add_user(USER, STATE_DIR)
        rep.changes.append(f"user {USER} added")
        have = set()
    add = [g for g in groups if g not in have]
    if add:
        system.add_to_groups(USER, add)
        rep.changes.append(f"user {USER} added to {', '.join(add)}")
    rep.did(system.mkdir(CONFIG_DIR, 0o750), f"{CONFIG_DIR} made")
    rep.did(system.chown(CONFIG_DIR, "root", USER), f"{CONFIG_DIR} owned by root:{USER}")
    rep.did(system.mkdir(STATE_DIR, 0o750), f"{STATE_DIR} made")
    rep.did(system.chown(STATE_DIR, USER, USER), f"{STATE_DIR} owned by {USER}")
    if system.path(CONFIG).exists():
        rep.notes.append(f"{CONFIG} kept as it is")
    else:
        system.write(CONFIG, data_file("config.example.toml").read_bytes(), 0o640)
        system.chown(CONFIG, "root", USER)
        rep.changes.append(f"{CONFIG} written from config.example.toml: edit it")
    if token and system.write(TOKEN_FILE, token.encode() + b"\n", 0o600):
        rep.changes.append(f"{TOKEN_FILE} stored (root only)")
        rep.restart = True
    if token:
        system.chown(TOKEN_FILE, "root", "root")
    creds = [c for c in CREDENTIALS if system.path(f"{CONFIG_DIR}/{c}").is_file()]
    unit = render_unit(data_file("plate-agent.service").read_text(encoding="utf-8"),
                       exec_line=exec_line or exec_start(), groups=groups, credentials=creds)
    if system.write(UNIT_PATH, unit.encode(), 0o644):
        rep.changes.append(f"{UNIT_PATH} written")
        rep.restart = True
    errors = check(system.path(CONFIG))
    return rep, errors


def start(system: System, rep: Report) -> None:
    """Load the unit and start it; a changed unit or credential restarts a running service."""
    if rep.restart:
        system.run(["systemctl", "daemon-reload"])
        system.run(["systemctl", "try-restart", UNIT])  # nothing when it is not running yet
    system.run(["systemctl", "enable", "--now", UNIT])


def uninstall(system: System, *, purge: bool = False) -> Report:
    """Stop, disable and remove the unit; the config, the token and the history stay unless ``purge``."""
    rep = Report()
    if system.path(UNIT_PATH).exists():
        system.run(["systemctl", "disable", "--now", UNIT])
        system.remove(UNIT_PATH)
        system.run(["systemctl", "daemon-reload"])
        rep.changes.append(f"{UNIT} stopped, disabled and removed")
    if purge:
        rep.did(system.remove(CONFIG_DIR), f"{CONFIG_DIR} removed")
        rep.did(system.remove(STATE_DIR), f"{STATE_DIR} removed")
        rep.did(system.remove_user(USER), f"user {USER} removed")
    else:
        rep.notes.append(f"kept: {CONFIG_DIR} (config, token), {STATE_DIR} (outboxes) and the user {USER};"
                         " --purge removes them")
    return rep


def _system(root: str) -> System:
    from .hostsys import HostSystem, RootSystem

    return RootSystem(root) if root else HostSystem()


def _print(rep: Report, out: TextIO) -> None:
    for line in rep.changes:
        print(f"  changed: {line}", file=out)
    for line in rep.notes:
        print(f"  note: {line}", file=out)
    if not rep.changes:
        print("  nothing to change", file=out)


def _target(verb: str, root: str, system: System | None) -> System | None:
    """The system to change: ``system``, a dry run under ``root``, or this machine (as root only)."""
    if not root and system is None and os.geteuid() != 0:
        print(f"{verb}: run it as root (sudo plate-agent {verb})", file=sys.stderr)
        return None
    return system or _system(root)


def _print_dry_run(root: str, system: System, out: TextIO) -> None:
    if root:
        print("would run:", file=out)
        for argv in getattr(system, "commands", []):
            print("  " + " ".join(argv), file=out)


def run_install(root: str, *, ask_token: bool, check: Callable[[Path], list[str]],
                stdin: TextIO = sys.stdin, out: TextIO = sys.stdout, system: System | None = None) -> int:
    """The command: 0 installed and started, 1 failed, 2 the config needs fixing (nothing started)."""
    system = _target("install", root, system)
    if system is None:
        return 1
    token = read_token(stdin) if ask_token else ""
    try:
        rep, errors = install(system, check, token=token)
    except OSError as err:
        print(f"install failed: {err}", file=sys.stderr)
        return 1
    print("plate-agent install:", file=out)
    _print(rep, out)
    if errors:
        print(f"{CONFIG}: invalid configuration (the service is not started):", file=out)
        for line in errors:
            print(f"  {line}", file=out)
        print("fix it, then run `sudo plate-agent install` again", file=out)
        return 2
    start(system, rep)
    _print_dry_run(root, system, out)
    print(f"config: {CONFIG}   state: {STATE_DIR}", file=out)
    print("check every part: sudo plate-agent doctor", file=out)
    print(f"after editing the config: sudo systemctl restart {UNIT}", file=out)
    print(f"follow the log:   journalctl -u {UNIT} -f", file=out)
    return 0


def run_uninstall(root: str, *, purge: bool, out: TextIO = sys.stdout, system: System | None = None) -> int:
    """The command: 0 removed, 1 failed."""
    system = _target("uninstall", root, system)
    if system is None:
        return 1
    try:
        rep = uninstall(system, purge=purge)
    except OSError as err:
        print(f"uninstall failed: {err}", file=sys.stderr)
        return 1
    print("plate-agent uninstall:", file=out)
    _print(rep, out)
    _print_dry_run(root, system, out)
    return 0


__all__ = ["Report", "data_file", "exec_start", "install", "read_token", "render_unit", "run_install", "run_uninstall",
           "start", "uninstall"]
