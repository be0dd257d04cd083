"""Security through the whole agent: secrets never in a log line, /status, /metrics or the MQTT
summary; world-readable config and credential files warned about; MQTT over TLS with a CA made
here (openssl CLI); the gate command topic off by default and strict about its payload."""

from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from agent import config
from agent.service import log_config_warnings
from agent.sinks.mqtt import MqttSink
from tests.faults.conftest import agent_config, http_get, wait_until
from tests.fixtures_mqtt import Broker, Subscriber, free_port, require_tools
from tests.fixtures_pr import PR_TOKEN
from tests.prserver import PRServer
from tests.sinks.test_mqtt import decision

pytestmark = pytest.mark.faults

MQTT_PASSWORD = "mqtt-pass-4c9d1f"
WEBHOOK_SECRET = "hook-secret-81aa0e"
CAMERA_PASSWORD = "cam-pass-2b7f"


def test_secrets_never_reach_logs_status_metrics_or_mqtt(tmp_path: Path, clips, monkeypatch, caplog,
                                                        mqtt_broker: Broker, start_agent) -> None:
    caplog.set_level(logging.DEBUG)  # everything, third-party loggers included
    monkeypatch.setenv("PLATE_RECOGNIZER_TOKEN", PR_TOKEN)
    monkeypatch.setenv("MQTT_PASSWORD", MQTT_PASSWORD)
    monkeypatch.setenv("WEBHOOK_SECRET", WEBHOOK_SECRET)
    dead = free_port()
    with PRServer(token=PR_TOKEN) as server:
        server.faults.extend(["502", "403"])  # the error paths log too
        sub = Subscriber(mqtt_broker.port, "sec/status/summary")
        cfg = agent_config(
            tmp_path,
            cameras=[{"id": "gate", "source": str(clips(("AB12 CDE", "XX99 XXX"))), "type": "file"},
                     {"id": "side", "source": f"rtsp://viewer:{CAMERA_PASSWORD}@127.0.0.1:{dead}/s",
                      "open_timeout_s": 1.0, "reconnect_max_s": 1.0}],
            reader={"type": "cloud", "url": server.url, "retries": 0, "rate_per_s": 0.0, "usage_poll_s": 1.0,
                    "forbidden_backoff_s": 1.0, "backoff_max_s": 0.5},
            mqtt={"enabled": True, "port": mqtt_broker.port, "prefix": "sec", "username": "agent"},
            webhooks=[{"url": f"http://127.0.0.1:{dead}/hook", "secret_header": "X-Secret", "retries": 0}],
        )
        agent = start_agent(cfg)
        wait_until(lambda: agent.doc()["reader"]["crops_read"] >= 1, timeout_s=30, what="a read after the errors")
        wait_until(lambda: agent.doc()["cameras"]["side"]["last_error"], what="the camera's error")
        summary = sub.get(timeout=10).payload.decode()
        sub.close()
        _, status = http_get(agent.port, "/status")
        metrics = agent.metrics()
        agent.close()
    assert any(r.levelno >= logging.WARNING for r in caplog.records)  # the faults were logged
    assert "403" in caplog.text or "forbidden" in caplog.text
    for secret in (PR_TOKEN, MQTT_PASSWORD, WEBHOOK_SECRET, CAMERA_PASSWORD):
        for name, text in (("log", caplog.text), ("status", status.decode()), ("metrics", metrics),
                           ("mqtt summary", summary)):
            assert secret not in text, f"{name} leaks a secret"
    assert "viewer:" not in status.decode() and "***@127.0.0.1" in status.decode()


def test_world_readable_config_and_credentials_are_warned_about(tmp_path: Path, monkeypatch, caplog) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "plate_recognizer_token").write_text("x")
    (creds / "mqtt_password").write_text("y")
    os.chmod(creds / "plate_recognizer_token", 0o644)
    os.chmod(creds / "mqtt_password", 0o600)
    cfg_file = tmp_path / "config.toml"
    cfg_file.write_text('[[cameras]]\nid = "gate"\nsource = "/dev/null"\n')
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    for mode, expect in ((0o644, {"config.toml", "plate_recognizer_token"}), (0o640, {"plate_recognizer_token"})):
        os.chmod(cfg_file, mode)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="agent.service"):
            log_config_warnings(config.load(cfg_file))
        warned = {Path(r.getMessage().split("path=")[1].split()[0]).name for r in caplog.records}
        assert warned == expect, caplog.text


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca_and_server_cert(d: Path, name: str = "ca") -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it (1 day, EC P-256)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "1",
            "-subj", f"/CN=plate-agent test {name}", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1", cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                               "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
                               "authorityKeyIdentifier=keyid,issuer\nsubjectKeyIdentifier=hash\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", f"{name}.pem", "-CAkey", f"{name}.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "1", "-extfile", "ext.cnf", cwd=d)
    return d / f"{name}.pem", d / "server.pem", d / "server.key"


def test_mqtt_over_tls_with_a_ca_made_here(tmp_path: Path, start_agent) -> None:
    require_tools("mosquitto", "openssl")
    certs = tmp_path / "certs"
    certs.mkdir()
    ca, cert, key = make_ca_and_server_cert(certs)
    other_ca, _, _ = make_ca_and_server_cert(tmp_path, "other")  # a CA that did not sign the broker
    broker = Broker(tmp_path, f"cafile {ca}\ncertfile {cert}\nkeyfile {key}\ntls_version tlsv1.2")
    broker.start()
    try:
        mqtt = {"enabled": True, "port": broker.port, "tls": True, "reconnect_min_s": 0.5, "reconnect_max_s": 1.0}
        camera = [{"id": "gate", "source": "/dev/null", "type": "file"}]
        good = start_agent(agent_config(tmp_path / "a", cameras=camera, mqtt={**mqtt, "ca_file": str(ca)}))
        wait_until(lambda: good.doc()["mqtt"]["connected"], what="a TLS connection")
        bad = start_agent(agent_config(tmp_path / "b", cameras=camera, mqtt={**mqtt, "ca_file": str(other_ca)}))
        # the bad agent's handshake reached the broker and was refused by the agent
        wait_until(lambda: "certificate verify failed" in (log := broker.log.read_text()) or "alert" in log,
                   what="the handshake with an unknown CA refused")
        assert bad.doc()["mqtt"]["connected"] is False  # an unknown CA is never trusted
        assert good.doc()["mqtt"]["connected"] is True
    finally:
        broker.stop()


def test_gate_command_topic_off_by_default_and_strict_when_on(tmp_path: Path, mqtt_broker: Broker,
                                                              start_agent) -> None:
    camera = [{"id": "gate", "source": "/dev/null", "type": "file"}]
    sub = Subscriber(mqtt_broker.port, "cmd/gate/gate")
    try:
        # a retained command waits on the broker: an agent that subscribes gets it at once and must
        # reject it (retained), which proves its subscription is live before the test publishes
        sub.client.publish("cmd/gate/gate/set", "LETMEIN", qos=1, retain=True).wait_for_publish(5)
        for command_topic, payloads, pulses in ((False, ["OPEN"], 0), (True, ["OPEN", "open", "LETMEIN "], 0),
                                                (True, ["LETMEIN"], 1)):
            factory = MockFactory()
            mqtt = {"enabled": True, "port": mqtt_broker.port, "prefix": "cmd", "command_topic": command_topic,
                    "command_payload": "LETMEIN", "client_id": f"cmd-{command_topic}-{pulses}",
                    "insecure_command": command_topic}  # this broker has neither TLS nor users
            agent = start_agent(agent_config(tmp_path / f"{command_topic}{pulses}", cameras=camera, mqtt=mqtt,
                                             relay={"type": "gpio", "pin": "17", "pulse_s": 0.1}),
                                relay_kw={"pin_factory": factory})
            sink = agent.service.parts.outputs.mqtt
            assert isinstance(sink, MqttSink)
            wait_until(lambda a=agent: a.doc()["mqtt"]["connected"], what="connected")
            if command_topic:
                wait_until(lambda s=sink: s.stats()["commands_rejected"] == 1, what="the retained command refused")
            for p in payloads:
                sub.client.publish("cmd/gate/gate/set", p, qos=1).wait_for_publish(5)
            # the positive control: the broker forwarded the commands before it acknowledges an event the
            # agent publishes now, and paho handles what it receives in order, so once that event is
            # acknowledged every command (and, for an agent that subscribed, the retained one) was handled
            sink.send(decision("control"))
            wait_until(lambda s=sink: s.stats()["acked"] >= 1 and s.stats()["outbox"] == 0, what="the control acked")
            assert agent.doc()["relay"]["pulses"] == pulses, (command_topic, payloads)
            assert [s.state for s in factory.pin(17).states].count(True) == pulses
            stats = sink.stats()
            assert stats["commands"] == pulses
            assert stats["commands_rejected"] == (1 + len(payloads) - pulses if command_topic else 0)
            agent.close()
    finally:
        sub.close()
    assert json.dumps(config.MqttConfig().command_topic) == "false"
