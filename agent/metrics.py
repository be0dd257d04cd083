"""``/metrics``: the status document in Prometheus' text exposition format (version 0.0.4)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .dbfile import MEMORY


def _num(value: Any) -> str | None:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        return repr(float(value)) if isinstance(value, float) else str(value)
    return None


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    esc = (str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for v in labels.values())
    return "{" + ",".join(f'{k}="{v}"' for k, v in zip(labels, esc, strict=True)) + "}"


class _Metrics:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, name: str, kind: str, help_: str, samples: Iterable[tuple[Mapping[str, str], Any]]) -> None:
        rows = [(lb, _num(v)) for lb, v in samples]
        rows = [(lb, v) for lb, v in rows if v is not None]
        if not rows:
            return
        full = f"plate_agent_{name}"
        self.lines += [f"# HELP {full} {help_}", f"# TYPE {full} {kind}"]
        self.lines += [f"{full}{_labels(lb)} {v}" for lb, v in rows]


CAMERA_METRICS = (  # name, type, help, key in the camera's status
    ("camera_up", "gauge", "1 while the camera delivers fresh frames", "ok"),
    ("camera_connected", "gauge", "1 while connected", "connected"),
    ("camera_fps_in", "gauge", "frames received per second", "fps_in"),
    ("camera_fps_processed", "gauge", "frames processed per second", "fps_processed"),
    ("camera_last_frame_age_seconds", "gauge", "seconds since the last frame", "last_frame_age_s"),
    ("camera_reconnects_total", "counter", "reconnections", "reconnects"),
    ("camera_stalls_total", "counter", "reads abandoned by the read watchdog", "stalls"),
    ("camera_dropped_frames_total", "counter", "frames overwritten before processing", "dropped_frames"),
    ("camera_corrupt_frames_total", "counter", "frames that could not be decoded", "corrupt_frames"),
    ("camera_frames_total", "counter", "frames received", "frames_in"),
    ("camera_frames_processed_total", "counter", "frames processed", "frames_processed"),
    ("camera_plates_total", "counter", "plates detected on the device", "plates"),
    ("camera_uploads_total", "counter", "crops handed to the reader", "uploads"),
)
READER_METRICS = (
    ("reader_up", "gauge", "1 while the reader is healthy", "ok"),
    ("reader_rate_limited", "gauge", "1 after a 429 in the last minute", "rate_limited"),
    ("reader_uploads_total", "counter", "upload attempts", "uploads"),
    ("reader_reads_total", "counter", "plate reads delivered", "reads"),
    ("reader_late_reads_total", "counter", "plate reads too late to open the gate", "late_reads"),
    ("reader_throttled_total", "counter", "429 answers", "throttled_total"),
    ("reader_last_success_age_seconds", "gauge", "seconds since the last successful read", "last_success_age_s"),
)


def metrics_text(doc: Mapping[str, Any]) -> str:
    """The status document as Prometheus text exposition (version 0.0.4)."""
    m = _Metrics()
    m.add("up", "gauge", "1 while every camera and the reader are healthy", [({}, doc["ok"])])
    m.add("events_total", "counter", "events (one per vehicle pass and update)", [({}, doc["events"])])
    cams = doc["cameras"]
    for name, kind, help_, key in CAMERA_METRICS:
        m.add(name, kind, help_, [({"camera": cid}, c.get(key)) for cid, c in cams.items()])
    r = doc["reader"]
    for name, kind, help_, key in READER_METRICS:
        m.add(name, kind, help_, [({}, r.get(key))])
    m.add("reader_paused", "gauge", "1 while uploads are paused (state unavailable or forbidden)",
          [({"state": s}, r.get("state") == s) for s in ("unavailable", "forbidden")] if "state" in r else [])
    m.add("reader_errors_total", "counter", "failed reads by kind",
          [({"kind": k}, v) for k, v in sorted(r.get("errors", {}).items())])
    outbox = r.get("outbox") or {}
    m.add("reader_outbox_depth", "gauge", "crops waiting in the outbox", [({}, outbox.get("depth"))])
    m.add("reader_outbox_oldest_age_seconds", "gauge", "age of the oldest crop in the outbox",
          [({}, outbox.get("oldest_age_s"))])
    m.add("reader_outbox_evicted_total", "counter", "crops dropped by the outbox bounds", [({}, outbox.get("evicted"))])
    if outbox.get("storage"):
        m.add("reader_outbox_in_memory", "gauge", "1 while the outbox is kept in memory (the disk failed)",
              [({}, outbox["storage"] == MEMORY)])
    quota = r.get("quota") or {}
    m.add("reader_quota_used", "gauge", "lookups used this period", [({}, quota.get("used"))])
    m.add("reader_quota_limit", "gauge", "lookups allowed this period", [({}, quota.get("limit"))])
    mqtt = doc["mqtt"]
    if mqtt.get("enabled"):
        m.add("mqtt_connected", "gauge", "1 while connected to the broker", [({}, mqtt.get("connected"))])
        m.add("mqtt_outbox_depth", "gauge", "messages waiting for the broker", [({}, mqtt.get("outbox"))])
        m.add("mqtt_alive", "gauge", "0 when the MQTT sink's callbacks keep failing", [({}, mqtt.get("alive"))])
        m.add("mqtt_commands_rejected_total", "counter", "gate commands refused",
              [({}, mqtt.get("commands_rejected"))])
        m.add("mqtt_outbox_in_memory", "gauge", "1 while the outbox is kept in memory (the disk failed)",
              [({}, mqtt.get("outbox_storage") == MEMORY)])
    clock = doc.get("clock") or {}
    m.add("clock_synchronised", "gauge", "1 once the wall clock is known to be synchronised (dated rules count)",
          [({}, clock.get("synchronised"))])
    relay = doc["relay"]
    if relay.get("state") is not None:
        m.add("relay_on", "gauge", "1 while the gate relay is on", [({}, relay["state"] == "on")])
        m.add("relay_pulses_total", "counter", "gate relay pulses", [({}, relay.get("pulses"))])
        m.add("relay_ok", "gauge", "0 while the relay does not answer (unplugged, I/O errors)", [({}, relay.get("ok"))])
    return "\n".join(m.lines) + "\n"


__all__ = ["metrics_text"]
