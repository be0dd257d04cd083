"""``plate-agent doctor``: checks every part the config uses, in order, one pass/fail line each with
what to do. Exit 0 only when everything the config needs passes; ``--json`` for scripts.

Order: config, cameras, detector, reader, MQTT, relay (``--pulse`` only: it moves the barrier),
clock, state directory. The service's credentials are found next to the config file, where
``plate-agent install`` stores them, when the environment has none.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ..config import Config
from ..environ import state_dir
from .install import CREDENTIALS, STATE_DIR
from .doctor_parts import Verdict, check_camera, check_detector, check_mqtt, check_reader, check_relay
from ..timebase import system_clock_source

SERVICE_STATE_DIR = Path(STATE_DIR)  # systemd's StateDirectory= for the unit
PASS, FAIL, SKIP, WARN = "pass", "fail", "skip", "warn"


@dataclass
class Check:
    name: str
    status: str  # pass | fail | skip (not used by the config, or not asked for) | warn (not needed)
    detail: str
    hint: str = ""
    elapsed_s: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Options:
    paid_read: bool = False  # --read
    pulse: bool = False  # --pulse
    clock_source: Callable[[], str] = system_clock_source
    environ: Mapping[str, str] | None = None
    relay_kw: dict[str, Any] = field(default_factory=dict)


def credentials_env(cfg_path: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment, with the config's folder as the credentials folder when none is set and
    it holds one (``sudo plate-agent doctor`` outside the service)."""
    env = dict(environ)
    folder = Path(cfg_path).resolve().parent
    if not env.get("CREDENTIALS_DIRECTORY") and any((folder / n).is_file() for n in CREDENTIALS):
        env["CREDENTIALS_DIRECTORY"] = str(folder)
    return env


def service_state_dir(cfg: Config, environ: Mapping[str, str]) -> Path:
    """Where the agent keeps its outboxes: as ``run`` decides, or the unit's StateDirectory
    when this runs outside the service and that exists."""
    if not cfg.storage.state_dir and not environ.get("STATE_DIRECTORY") and SERVICE_STATE_DIR.is_dir():
        return SERVICE_STATE_DIR
    return state_dir(cfg.storage, environ)


def check_clock(cfg: Config, source: Callable[[], str]) -> Check:
    from ..rules import AccessRules

    rules = AccessRules(cfg.rules)
    rules.load()
    dated = rules.stats().get("dated", 0)
    if cfg.clock.trusted:
        return Check("clock", PASS, "trusted by [clock] trusted = true (a board with an RTC)")
    found = source()
    if found:
        return Check("clock", PASS, f"synchronised (source {found})", data={"source": found})
    why = "not synchronised: the kernel and systemd-timesyncd say no"
    hint = "enable NTP: sudo timedatectl set-ntp true; check `timedatectl`; or [clock] trusted = true with an RTC"
    if dated:
        return Check("clock", FAIL, f"{why}; {dated} dated or scheduled rule(s) are off until it is", hint)
    return Check("clock", WARN, f"{why} (no dated or scheduled rules need it)", hint)


def check_state(cfg: Config, environ: Mapping[str, str]) -> Check:
    where = service_state_dir(cfg, environ)
    need_mb = cfg.storage.outbox_max_mb * (2 if cfg.mqtt.enabled else 1)  # the outboxes at their bound
    hint = f"storage.state_dir, or sudo plate-agent install (makes {SERVICE_STATE_DIR})"
    try:
        where.mkdir(parents=True, exist_ok=True)
        probe = where / f".doctor-{os.getpid()}"
        with open(probe, "wb") as f:
            f.write(b"doctor")
            f.flush()
            os.fsync(f.fileno())
        probe.unlink()
        free_mb = shutil.disk_usage(where).free / 1e6
    except OSError as err:
        return Check("state directory", FAIL, f"{where}: not writable: {err.strerror or err}", hint)
    detail = f"{where}: writable, {free_mb:,.0f} MB free (the outboxes may use {need_mb:,.0f} MB)"
    data = {"path": str(where), "free_mb": round(free_mb, 1), "need_mb": need_mb}
    if free_mb < need_mb:
        return Check("state directory", FAIL, detail, "free some space, or lower storage.outbox_max_mb", data=data)
    return Check("state directory", PASS, detail, data=data)


def _run(name: str, fn: Callable[[], dict[str, Any]]) -> Check:
    t0 = time.monotonic()
    try:
        data = fn()
    except Verdict as v:
        return Check(name, FAIL, v.detail, v.hint, round(time.monotonic() - t0, 3))
    except Exception as err:  # a check that breaks is a failed check, never a traceback for the operator
        return Check(name, FAIL, f"{type(err).__name__}: {err}", "run with --log-level debug; report it",
                     round(time.monotonic() - t0, 3))
    detail = data.pop("detail")
    return Check(name, PASS, detail, elapsed_s=round(time.monotonic() - t0, 3), data=data)


def diagnose(cfg: Config, opts: Options) -> list[Check]:
    """Every check after the config's, in order."""
    env = credentials_env(cfg.path or ".", os.environ if opts.environ is None else opts.environ)
    checks = [_run(f"camera {cam.id}", lambda cam=cam: check_camera(cam)) for cam in cfg.cameras]  # type: ignore[misc]
    checks.append(_run("detector", lambda: check_detector(cfg)))
    if cfg.reader.type == "none":
        checks.append(Check("reader", SKIP, "reader.type = \"none\": detection only"))
    else:
        checks.append(_run(f"reader {cfg.reader.type}", lambda: check_reader(cfg, env, opts.paid_read)))
    if cfg.mqtt.enabled:
        checks.append(_run("mqtt", lambda: check_mqtt(cfg, env)))
    else:
        checks.append(Check("mqtt", SKIP, "mqtt.enabled = false"))
    if cfg.relay.type == "none":
        checks.append(Check("relay", SKIP, "relay.type = \"none\""))
    elif not opts.pulse:
        checks.append(Check("relay", SKIP, f"{cfg.relay.type} relay not tried: --pulse opens the gate once"))
    else:
        checks.append(_run("relay", lambda: check_relay(cfg, **opts.relay_kw)))
    checks.append(check_clock(cfg, opts.clock_source))
    checks.append(check_state(cfg, env))
    return checks


def report(checks: list[Check], out: TextIO, as_json: bool) -> None:
    ok = not any(c.status == FAIL for c in checks)
    if as_json:
        json.dump({"ok": ok, "checks": [asdict(c) for c in checks]}, out, indent=1)
        out.write("\n")
        return
    for c in checks:
        out.write(f"{c.status.upper():4}  {c.name}: {c.detail}\n")
        if c.hint and c.status in (FAIL, WARN):
            out.write(f"      fix: {c.hint}\n")
    failed = [c.name for c in checks if c.status == FAIL]
    out.write("all needed checks pass\n" if ok else f"{len(failed)} check(s) failed: {', '.join(failed)}\n")


def run_doctor(path: str, opts: Options, *, as_json: bool = False, out: TextIO = sys.stdout) -> int:
    """0: everything the config needs passes; 1: a check failed; 2: the config is invalid."""
    from ..__main__ import EXIT_CONFIG, EXIT_FAIL, EXIT_OK, run_config_errors

    cfg, errors = run_config_errors(path)
    if cfg is None:
        report([Check("config", FAIL, f"{path}: " + "; ".join(errors),
                      f"edit {path}; `plate-agent check-config -c {path}` lists every error")], out, as_json)
        return EXIT_CONFIG
    checks = [Check("config", PASS, f"{path}: valid ({len(cfg.cameras)} camera(s), reader {cfg.reader.type}, "
                    f"relay {cfg.relay.type}, mqtt {'on' if cfg.mqtt.enabled else 'off'})")]
    checks += diagnose(cfg, opts)
    report(checks, out, as_json)
    return EXIT_OK if not any(c.status == FAIL for c in checks) else EXIT_FAIL


__all__ = ["Check", "Options", "credentials_env", "diagnose", "report", "run_doctor"]
