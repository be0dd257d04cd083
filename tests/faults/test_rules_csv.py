"""A rules CSV saved by a spreadsheet (Windows-1252 or UTF-16, ``;`` or tab between cells) is read;
a bad row is left out with a warning naming its line, the same in ``check-config`` and ``run``, and
the agent runs with the good rows; a reload that finds nothing usable keeps the last good rules."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.__main__ import load_run_config
from agent.config import RulesConfig
from agent.rules import AccessRules
from agent.service import Service

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parents[2]
ROWS = [
    "plate;label;list;valid_from;valid_until;schedule;cameras",
    "AB12 CDE;Zoë Müller;allow;;;;",
    "XY99 ZZZ;Renée;allow;;;Mon 07:00-25:00;",  # line 3: a bad schedule
    "BAN1;Café;deny;2024-13-01;;;",  # line 4: a bad date on a ban: kept as a plain deny
    "CD34 EFG;;allow;;;;gate",
]
EXPORTS = {
    "cp1252 ;": ("\r\n".join(ROWS) + "\r\n").encode("cp1252"),
    "utf-16 tab": ("\r\n".join(r.replace(";", "\t") for r in ROWS) + "\r\n").encode("utf-16"),
    "utf-8 bom ,": ("\n".join(r.replace(";", ",") for r in ROWS) + "\n").encode("utf-8-sig"),
}


@pytest.mark.parametrize("export", sorted(EXPORTS))
def test_spreadsheet_exports_load_without_their_bad_rows_in_check_config_and_run(
        tmp_path: Path, export: str, caplog: pytest.LogCaptureFixture) -> None:
    rules = tmp_path / "rules.csv"
    rules.write_bytes(EXPORTS[export])
    cfg_file = tmp_path / "agent.toml"
    cfg_file.write_text(f'[[cameras]]\nid = "gate"\nsource = "/dev/null"\ntype = "file"\n'
                        f'[storage]\nstate_dir = "{tmp_path}/state"\n[status]\nenabled = false\n'
                        f'[rules]\nfile = "{rules}"\n')
    check = subprocess.run([sys.executable, "-m", "agent", "check-config", "-c", str(cfg_file)], cwd=ROOT,
                           env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                           timeout=60)
    assert check.returncode == 0, check.stderr
    assert f"{rules}:3: schedule" in check.stderr and "row left out" in check.stderr
    assert f"{rules}:4: valid_from" in check.stderr and "kept as a deny" in check.stderr

    caplog.set_level(logging.WARNING)
    cfg = load_run_config(str(cfg_file))  # what `run` does before its loop
    assert cfg is not None
    service = Service(cfg)
    try:
        r = service.build().parts.rules
        assert f"{rules}:3: schedule" in caplog.text  # the same warning, from the same check
        assert "bad_lines=3,4" in caplog.text
        assert r.check("AB12CDE", "gate").action == "open"
        assert r.check("CD34EFG", "gate").action == "open"
        assert r.check("XY99ZZZ", "gate").action == "none"  # its row was left out
        assert r.check("BAN1", "gate").action == "deny"
        assert [x.label for x in r.rules if x.norm == "AB12CDE"] == ["Zoë Müller"]
    finally:
        service.close()


def test_a_reload_keeps_the_last_good_rules_and_takes_the_good_rows(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    rules = tmp_path / "rules.csv"
    rules.write_bytes("plate;list\r\nAB12CDE;allow\r\n".encode("cp1252"))
    r = AccessRules(RulesConfig(file=str(rules)))
    r.load()
    rules.write_bytes(b"plate;list\r\nAB12CDE;alow\r\n")  # nothing usable
    assert r.reload() is False
    assert r.check("AB12CDE", "gate").action == "open" and r.stats()["reload_errors"] == 1
    caplog.set_level(logging.WARNING)
    rules.write_bytes("plate;list\r\nZZ1;allow\r\nAB12CDE;alow\r\n".encode("utf-16"))
    assert r.reload() is True
    assert r.check("ZZ1", "gate").action == "open" and r.check("AB12CDE", "gate").action == "none"
    assert f"{rules}:3: list" in caplog.text and r.stats()["bad_rows"] == 1
