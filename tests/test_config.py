"""Config loading: the example validates; every kind of bad input names its key; check-config exits 2."""

from __future__ import annotations

import dataclasses
import re
import typing
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from agent import config, environ
from agent.__main__ import main
from agent.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config.example.toml"

MINIMAL = '[[cameras]]\nid = "gate"\nsource = "rtsp://127.0.0.1:8554/stream"\n'


def errors_of(text: str, tmp_path: Path) -> list[str]:
    p = tmp_path / "c.toml"
    p.write_text(text)
    with pytest.raises(ConfigError) as info:
        config.load(p)
    return info.value.errors


def test_example_validates_and_check_config_exits_0(capsys):
    cfg = config.load(EXAMPLE)
    assert cfg.cameras and cfg.cameras[0].id
    assert main(["check-config", "-c", str(EXAMPLE)]) == 0
    assert "ok" in capsys.readouterr().out


SECTIONS = {
    "motion": config.MotionConfig, "detector": config.DetectorConfig, "crop": config.CropConfig,
    "upload": config.UploadConfig, "reader": config.ReaderConfig, "decision": config.DecisionConfig,
    "rules": config.RulesConfig, "rules.allow": config.RuleEntry, "mqtt": config.MqttConfig,
    "relay": config.RelayConfig, "webhooks": config.WebhookConfig, "storage": config.StorageConfig,
    "status": config.StatusConfig, "cameras": config.CameraConfig, "cameras.zones": config.Zone,
    "clock": config.ClockConfig, "history": config.HistoryConfig, "console": config.ConsoleConfig,
}


def example_sections() -> dict[str, str]:
    """config.example.toml's text under each table header (set or commented out), by table name."""
    parts: dict[str, str] = {"": ""}
    name = ""
    for line in EXAMPLE.read_text().splitlines():
        m = re.match(r"^#?\s*\[\[?([a-z_.]+)\]\]?", line)
        if m:
            name = m[1]
            parts.setdefault(name, "")
        parts[name] += line + "\n"
    return parts


def test_example_documents_every_key_in_its_own_table():
    """Each key of each table appears (set or commented) under that table's header in config.example.toml."""
    parts = example_sections()
    missing = []
    for name, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            if not f.metadata.get("key", True):
                continue
            if f"{name}.{f.name}" in parts:  # documented as a table of its own
                continue
            if name == "cameras" and f.name in config.PER_CAMERA:  # per-camera overrides: below
                continue
            if not re.search(rf"^#?\s*{re.escape(f.name)}\s*=", parts.get(name, ""), re.MULTILINE):
                missing.append(f"{name}.{f.name}")
    assert missing == []
    # and no key is documented under a table that does not take it
    unknown = [f"{name}.{key}" for name, cls in SECTIONS.items()
               for key in re.findall(r"^#?\s*([a-z_]+)\s*=", parts.get(name, ""), re.MULTILINE)
               if key not in {f.name for f in dataclasses.fields(cls)}]
    assert unknown == []
    # every per-camera override table that takes keys is shown, with a key it takes
    for section, allowed in config.PER_CAMERA.items():
        if allowed is None or allowed:
            assert f"cameras.{section}" in parts, section


def test_example_uses_no_deprecated_key(caplog):
    with caplog.at_level("WARNING"):
        cfg = config.load(EXAMPLE)
    assert cfg.warnings == () and "deprecated" not in caplog.text


def test_defaults_apply(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text(MINIMAL)
    cfg = config.load(p)
    cam = cfg.cameras[0]
    assert cam.rtsp_transport == "tcp" and cam.motion == cfg.motion and cfg.reader.type == "none"


@pytest.mark.parametrize(
    "text, expected",
    [
        (MINIMAL + "bogus = 1\n", "bogus: unknown key"),
        (MINIMAL + "[motion]\nthreshhold = 3\n", "motion.threshhold: unknown key"),
        (MINIMAL + "[motion]\nthreshold = 300\n", "motion.threshold: must be <= 255"),
        (MINIMAL + "[motion]\nthreshold = 'high'\n", "motion.threshold: must be an integer"),
        (MINIMAL + "[motion]\nhold_s = true\n", "motion.hold_s: must be a number"),
        (MINIMAL + "[motion]\nhold_s = nan\n", "motion.hold_s: must be a finite number"),
        (MINIMAL + "[reader]\ntype = 'clown'\n", "reader.type: must be one of"),
        (MINIMAL + "[relay]\ntype = 'gpio'\n", "relay.pin: required"),
        ('[[cameras]]\nsource = "x"\n', "cameras[0].id: required"),
        ('[[cameras]]\nid = "Gate 1"\nsource = "x"\n', "cameras[0].id:"),
        (MINIMAL + "[[cameras.zones]]\npolygon = [[0.0, 0.0], [1.0, 1.0]]\n",
         "cameras[0].zones[0].polygon: polygon needs >= 3 points"),
        (MINIMAL + "[[cameras.zones]]\npolygon = [[0.0, 0.0], [1.5, 1.0], [0, 1]]\n",
         "cameras[0].zones[0].polygon[1]: must be [x, y]"),
        (MINIMAL + "[cameras.detector]\nmodel_path = 'x.tflite'\n",
         "cameras[0].detector.model_path: cannot be set per camera"),
        (MINIMAL + MINIMAL, "cameras: duplicate id 'gate'"),
        (MINIMAL + "[storage]\nstate_dir = 3\n", "storage.state_dir: must be a string"),
        ("cameras = 3\n", "cameras: must be a list"),
        ("[motion\n", "invalid TOML"),
    ],
)
def test_bad_input_names_the_key(tmp_path, text, expected):
    errs = errors_of(text, tmp_path)
    assert any(expected in e for e in errs), errs


def test_every_error_is_listed_at_once(tmp_path):
    errs = errors_of(MINIMAL + "[motion]\nthreshold = 0\nhold_s = -1\n[relay]\npulse_s = 0\n", tmp_path)
    assert {e.split(":")[0] for e in errs} >= {"motion.threshold", "motion.hold_s", "relay.pulse_s"}


def test_per_camera_override_merges_with_global(tmp_path):
    p = tmp_path / "c.toml"
    p.write_text("[motion]\nhold_s = 4.0\n" + MINIMAL + "[cameras.motion]\nthreshold = 40\n"
                 + '[[cameras]]\nid = "exit"\nsource = "0"\n')
    cfg = config.load(p)
    assert cfg.cameras[0].motion.threshold == 40 and cfg.cameras[0].motion.hold_s == 4.0
    assert cfg.cameras[1].motion.threshold == 25 and cfg.cameras[1].motion.hold_s == 4.0


def test_check_config_cli_exits_2_listing_errors(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text(MINIMAL + "[motion]\nthreshold = 0\n[relay]\ntype = 'serial'\n")
    proc = subprocess.run([sys.executable, "-m", "agent", "check-config", "-c", str(p)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2
    assert "motion.threshold" in proc.stderr and "relay.port" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_and_binary_files_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        config.load(tmp_path / "nope.toml")
    p = tmp_path / "bin.toml"
    p.write_bytes(b"\xff\xfe\x00junk")
    with pytest.raises(ConfigError, match="not UTF-8"):
        config.load(p)


def test_secrets_come_from_env_or_credentials(tmp_path):
    assert environ.secret("PLATE_RECOGNIZER_TOKEN", {"PLATE_RECOGNIZER_TOKEN": " abc \n"}) == "abc"
    (tmp_path / "plate_recognizer_token").write_text("from-cred\n")
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    assert environ.secret("PLATE_RECOGNIZER_TOKEN", env) == "from-cred"
    assert environ.secret("MQTT_PASSWORD", env) is None
    assert environ.secret("MQTT_PASSWORD", {"MQTT_PASSWORD": ""}) is None


def test_secrets_cannot_be_set_in_the_file(tmp_path):
    errs = errors_of(MINIMAL + "[reader]\ntoken = 'abc'\n", tmp_path)
    assert any("reader.token: unknown key" in e for e in errs)
    errs = errors_of(MINIMAL + "[mqtt]\npassword = 'abc'\n", tmp_path)
    assert any("mqtt.password: unknown key" in e for e in errs)


def test_state_dir_precedence(tmp_path):
    assert environ.state_dir(config.StorageConfig(state_dir="/x")) == Path("/x")
    assert environ.state_dir(config.StorageConfig(), {"STATE_DIRECTORY": "/var/lib/p:/other"}) == Path("/var/lib/p")
    assert environ.state_dir(config.StorageConfig(), {"XDG_STATE_HOME": str(tmp_path)}) == tmp_path / "plate-agent"


def test_moved_keys_still_load_with_a_warning_naming_the_new_key(tmp_path, caplog):
    p = tmp_path / "c.toml"
    p.write_text(MINIMAL + "[rules]\nmin_score = 0.6\nmatch = 'exact'\n[crop]\npass_gap_s = 3.0\nmode = 'vehicle'\n")
    with caplog.at_level("WARNING", logger="agent.config"):
        cfg = config.load(p)
    assert cfg.decision.min_score == 0.6 and cfg.rules.match == "exact"
    assert cfg.upload.pass_gap_s == 3.0 and cfg.cameras[0].upload.pass_gap_s == 3.0
    assert cfg.crop.mode == "vehicle" and cfg.cameras[0].crop.mode == "vehicle"
    expected = ["rules.min_score is deprecated: use decision.min_score",
                "crop.pass_gap_s is deprecated: use upload.pass_gap_s"]
    assert list(cfg.warnings) == expected
    assert [r.getMessage() for r in caplog.records] == expected


def test_check_config_shows_the_deprecation_warning(tmp_path, capsys):
    p = tmp_path / "c.toml"
    p.write_text(MINIMAL + "[rules]\nrearm_s = 5.0\n")
    assert main(["check-config", "-c", str(p)]) == 0
    assert "rules.rearm_s is deprecated: use decision.rearm_s" in capsys.readouterr().err


@pytest.mark.parametrize(
    "text, expected",
    [
        # a bad value in the old place names the key where the file has it
        (MINIMAL + "[rules]\nmin_score = 'high'\n", "rules.min_score: must be a number"),
        (MINIMAL + "[crop]\nmax_uploads_per_pass = 0\n", "crop.max_uploads_per_pass: must be >= 1"),
        (MINIMAL + "[rules]\nmin_score = 0.5\n[decision]\nmin_score = 0.6\n",
         "rules.min_score: moved to decision.min_score, which is set too"),
        (MINIMAL + "[cameras.crop]\nmax_uploads_per_pass = 3\n", "cameras[0].crop.max_uploads_per_pass: cannot be set"),
        (MINIMAL + "[cameras.upload]\npass_gap_s = 3.0\n", "cameras[0].upload.pass_gap_s: cannot be set per camera"),
        (MINIMAL + "[decision]\nmatch = 'exact'\n", "decision.match: unknown key"),
        (MINIMAL + "[relay]\ntype = 'serial'\nport = 'loop://'\npin = '17'\n",
         'relay.pin: only for type = "gpio" (type is "serial")'),
        (MINIMAL + "[relay]\ntype = 'gpio'\npin = '17'\nprotocol = 'at'\n",
         'relay.protocol: only for type = "serial" (type is "gpio")'),
        (MINIMAL + "[relay]\ntype = 'serial'\nport = 'loop://'\noff_bytes = '00'\n",
         'relay.off_bytes: only for protocol = "raw" (protocol is "lcus")'),
        (MINIMAL + "[relay]\ntype = 'gpio'\npin = 'GPIO28'\n", "relay.pin: must be a GPIO of the Raspberry Pi header"),
        (MINIMAL + "[mqtt]\nprefix = 'site/#'\n", "mqtt.prefix: must be a topic prefix: levels separated by /"),
        (MINIMAL + "[webhooks]\n", "webhooks: must be a list"),
        (MINIMAL + "[[rules.allow]]\nplate = 'AB1'\nschedule = 'Mon 25:00-26:00'\n",
         "rules.allow[0].schedule: bad time in 'Mon 25:00-26:00'"),
        (MINIMAL + "[[rules.allow]]\nplate = 'AB1'\nvalid_until = '2024-13-01'\n",
         "rules.allow[0].valid_until: bad date '2024-13-01'"),
        (MINIMAL + "[reader.config]\nsince = 2024-01-01T08:00:00\n",
         'reader.config.since: a TOML date or time has no JSON form; quote it: "2024-01-01T08:00:00"'),
        (MINIMAL + "[reader]\nconfig = { a = { b = [nan] } }\n", "reader.config.a.b[0]: must be a finite number"),
        (MINIMAL + "[detector]\ntype = 'onnx'\n", "detector.type: must be one of 'tflite', not 'onnx'"),
    ],
)
def test_checks_that_used_to_wait_for_start_name_the_key(tmp_path, text, expected):
    errs = errors_of(text, tmp_path)
    assert any(expected in e for e in errs), errs


def test_a_global_problem_is_reported_once_not_again_for_each_camera(tmp_path):
    errs = errors_of(MINIMAL + "[motion]\nthreshold = 300\n[reader.config]\nd = 2024-01-01\n", tmp_path)
    assert sorted(e.split(":")[0] for e in errs) == ["motion.threshold", "reader.config.d"]
    # a camera's own override is still reported at the camera
    errs = errors_of(MINIMAL + "[cameras.motion]\nthreshold = 300\n", tmp_path)
    assert [e.split(":")[0] for e in errs] == ["cameras[0].motion.threshold"]


def test_the_rules_file_is_checked_at_load_naming_file_and_line(tmp_path):
    rules = tmp_path / "rules.csv"
    rules.write_text("plate,label,list\nAB123CD,,allow\nXY1,,maybe\n,,allow\nZZ1,,deny,2024-02-30\n"
                     "QQ1,,allow,,,Sat 08:00-12:61\n")
    (tmp_path / "c.toml").write_text(MINIMAL + f"[rules]\nfile = '{rules}'\n")
    cfg = config.load(tmp_path / "c.toml")  # bad rows are left out, not fatal
    assert list(cfg.warnings) == [
        f"rules.file: {rules}:3: list: must be allow or deny, not 'maybe'; row left out",
        f"rules.file: {rules}:4: plate: must be 1 to 16 letters or digits (spaces, dashes, dots or underscores"
        " between them), not ''; row left out",
        f"rules.file: {rules}:5: valid_from: bad date '2024-02-30': day is out of range for month;"
        " kept as a deny for every camera, at all times",
        f"rules.file: {rules}:6: schedule: bad time in 'Sat 08:00-12:61' (00:00 to 24:00); row left out",
    ]
    rules.write_text("plate,label,list\nXY1,,maybe\n")  # nothing usable: an error
    assert errors_of(MINIMAL + f"[rules]\nfile = '{rules}'\n", tmp_path) == [
        f"rules.file: {rules}:2: list: must be allow or deny, not 'maybe'; row left out",
        f"rules.file: {rules}: no usable row"]
    assert any("rules.file: cannot read" in e for e in errors_of(MINIMAL + "[rules]\nfile = '/nonexistent.csv'\n",
                                                                  tmp_path))


def test_kinds_are_literals():
    """Every field with a fixed set of values is a Literal: mypy checks the code that reads it."""
    kinds = {"type", "mode", "kind", "format", "protocol", "match", "publish_crop", "rtsp_transport", "log_level"}
    sections = [*SECTIONS.values(), config.Config]
    found = []
    for cls in sections:
        for name, tp in typing.get_type_hints(cls).items():
            if name in kinds:
                assert typing.get_origin(tp) is typing.Literal, f"{cls.__name__}.{name}"
                found.append(name)
    assert set(found) == kinds


def test_pulse_longer_than_max_on_is_refused_naming_the_key(tmp_path, capsys):
    p = tmp_path / "relay.toml"
    relay = '[relay]\ntype = "gpio"\npin = "17"\nmax_on_s = 5.0\npulse_s = {}\n'
    p.write_text(MINIMAL + relay.format(5.5))
    assert main(["check-config", "-c", str(p)]) == 2
    err = capsys.readouterr().err
    assert "relay.pulse_s: must be <= max_on_s (5.0)" in err and "Traceback" not in err
    p.write_text(MINIMAL + relay.format(5.0))  # equal is allowed
    assert main(["check-config", "-c", str(p)]) == 0


def test_the_readme_walkthrough_config_validates_without_warnings():
    blocks = re.findall(r"```toml\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert blocks
    for block in blocks:
        assert config.parse(tomllib.loads(block)).warnings == ()
