"""Config loading: the example validates; every kind of bad input names its key; check-config exits 2."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agent import config
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


def test_example_documents_every_key():
    """Each key of each section appears in config.example.toml (commented or set)."""
    text = EXAMPLE.read_text()
    sections = {
        "motion": config.MotionConfig, "detector": config.DetectorConfig, "crop": config.CropConfig,
        "reader": config.ReaderConfig, "rules": config.RulesConfig, "mqtt": config.MqttConfig,
        "relay": config.RelayConfig, "webhooks": config.WebhookConfig, "storage": config.StorageConfig,
        "status": config.StatusConfig, "cameras": config.CameraConfig,
    }
    missing = []
    for name, cls in sections.items():
        for f in dataclasses.fields(cls):
            if f.name == "path":
                continue
            if not re.search(rf"^#?\s*{re.escape(f.name)}\s*=", text, re.MULTILINE) and not re.search(
                rf"\[\[?{name}\.{f.name}\]?\]", text
            ):
                missing.append(f"{name}.{f.name}")
    assert missing == []


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
    assert config.secret("PLATE_RECOGNIZER_TOKEN", {"PLATE_RECOGNIZER_TOKEN": " abc \n"}) == "abc"
    (tmp_path / "plate_recognizer_token").write_text("from-cred\n")
    env = {"CREDENTIALS_DIRECTORY": str(tmp_path)}
    assert config.secret("PLATE_RECOGNIZER_TOKEN", env) == "from-cred"
    assert config.secret("MQTT_PASSWORD", env) is None
    assert config.secret("MQTT_PASSWORD", {"MQTT_PASSWORD": ""}) is None


def test_secrets_cannot_be_set_in_the_file(tmp_path):
    errs = errors_of(MINIMAL + "[reader]\ntoken = 'abc'\n", tmp_path)
    assert any("reader.token: unknown key" in e for e in errs)
    errs = errors_of(MINIMAL + "[mqtt]\npassword = 'abc'\n", tmp_path)
    assert any("mqtt.password: unknown key" in e for e in errs)


def test_state_dir_precedence(tmp_path):
    assert config.state_dir(config.StorageConfig(state_dir="/x")) == Path("/x")
    assert config.state_dir(config.StorageConfig(), {"STATE_DIRECTORY": "/var/lib/p:/other"}) == Path("/var/lib/p")
    assert config.state_dir(config.StorageConfig(), {"XDG_STATE_HOME": str(tmp_path)}) == tmp_path / "plate-agent"
