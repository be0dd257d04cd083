"""The ``doctor`` checks of the working parts: each camera, the detector, the reader, MQTT and the
relay. Each builds the part the way the agent does, tries it once and closes it; none of them
pays for a read or moves the barrier unless asked to.
"""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

import cv2
import numpy as np

from .. import redact
from ..config import CameraConfig, Config
from ..environ import secret
from ..errors import AgentError
from .scene import draw_car
from ..types import Box, Detection, Image, PlateCrop

SETTLE_S = 1.0  # frames buffered while the stream opened come in a burst: not counted
MEASURE_S = 1.0  # the rate is measured over this long after that
TEST_PLATE = "AB12CDE"
MQTT_WAIT_S = 10.0


class Verdict(Exception):
    """A check's failure: what went wrong and what to do about it."""

    def __init__(self, detail: str, hint: str) -> None:
        super().__init__(detail)
        self.detail, self.hint = detail, hint


def check_camera(cam: CameraConfig) -> dict[str, Any]:
    """Open the camera as the agent does, read a few frames: size, rate, codec, first-frame time."""
    from ..errors import SourceError
    from ..sources import backend_for, make_source

    backend = backend_for(cam)
    src = make_source(cam)
    t0 = time.monotonic()
    try:
        src.open()
        first = src.read()
        t_first = time.monotonic()
        if first is None:
            raise SourceError("no frame")
        stamps: list[float] = []
        while (now := time.monotonic()) - t_first < SETTLE_S + MEASURE_S:
            if src.read() is None:
                break
            if now - t_first >= SETTLE_S:
                stamps.append(time.monotonic())
        props = src.properties()
    except SourceError as err:
        raise Verdict(str(err), f"check cameras[{cam.id}].source (URL, user and password; `ffprobe URL` on this "
                      "board); for RTSP try rtsp_transport = \"udp\"; for USB, the device, the video group, and "
                      "whether the running service holds it (sudo systemctl stop plate-agent)") from err
    finally:
        src.close()
    h, w = first.shape[:2]
    fps = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 2 and stamps[-1] > stamps[0] else 0.0
    return {"detail": f"{w}x{h}, {fps:.1f} fps measured ({props.get('fps', 0.0):g} announced), "
                      f"codec {props.get('codec') or '?'} ({backend}), first frame after {t_first - t0:.2f} s",
            "width": w, "height": h, "fps": round(fps, 2), "fps_announced": props.get("fps"),
            "codec": props.get("codec"), "backend": backend, "first_frame_s": round(t_first - t0, 3)}


def test_image() -> tuple[Image, Box]:
    """A car with a plate, drawn as the scene simulator draws them; and where the plate is."""
    img = np.full((720, 1280, 3), 95, np.uint8)
    img[:240] = (120, 110, 100)
    x1, y1, x2, y2 = draw_car(img, 640, 640, 1.0, (40, 60, 150), TEST_PLATE)
    return img, Box(x1, y1, x2, y2)


def check_detector(cfg: Config) -> dict[str, Any]:
    """Load the model and find the plate in the test image."""
    from ..detect import create_detector

    img, plate = test_image()
    t0 = time.monotonic()
    try:
        det = create_detector(cfg.detector)
    except AgentError as err:
        raise Verdict(f"cannot load: {err}", "detector.model_path (\"\" = the bundled model); on 32-bit Pi OS "
                      "pip install tflite-runtime, elsewhere ai-edge-litert") from err
    load_s = time.monotonic() - t0
    try:
        t1 = time.monotonic()
        found = det.detect(img)
        infer_s = time.monotonic() - t1
    except AgentError as err:
        raise Verdict(f"inference failed: {err}", "a model of the expected kind (models/README.md)") from err
    finally:
        det.close()
    best = max(found, key=lambda d: d.box.iou(plate), default=None)
    if best is None or best.box.iou(plate) < 0.3:
        raise Verdict(f"no plate found in the test image ({len(found)} other box(es))",
                      "detector.score_min too high, or a model that is not a plate detector")
    return {"detail": f"plate found (score {best.score:.2f}) in {infer_s * 1000:.0f} ms; loaded in {load_s:.1f} s",
            "score": round(best.score, 3), "inference_ms": round(infer_s * 1000, 1), "load_s": round(load_s, 2)}


def check_reader(cfg: Config, environ: Mapping[str, str], paid_read: bool) -> dict[str, Any]:
    """Cloud: the token and the quota (statistics); SDK: its version and usage (/info/). A paid
    read of the test image only with ``paid_read``."""
    from ..read import READERS
    from ..read.errors import ConnectionFailed, Forbidden, Timeout

    rc = cfg.reader
    try:
        reader = READERS[rc.type](rc, environ=environ)
    except AgentError as err:
        raise Verdict(str(err), "sudo plate-agent install (asks for the token), or PLATE_RECOGNIZER_TOKEN") from err
    shown = redact.url(reader.url)
    try:
        usage = reader.usage()
        out: dict[str, Any] = {"url": shown}
        if usage is not None:
            out.update(used=usage.calls, limit=usage.limit, version=usage.version or None)
        if rc.type == "cloud":
            out["detail"] = f"token accepted; {usage.calls if usage else '?'} lookups used"
            left = None
            if usage is not None and usage.limit is not None:
                left = usage.limit - usage.calls
                out["detail"] += f" of {usage.limit} ({left} left, resets {usage.resets_on or '?'})"
            if left is not None and left <= 0:
                raise Verdict(out["detail"], "the plan's lookups are used up: wait for the reset or upgrade")
        else:
            out["detail"] = f"SDK {usage.version if usage and usage.version else '?'} answers at {shown}; " \
                            f"{usage.calls if usage else '?'} lookups used"
        if paid_read:
            img, _ = test_image()
            ok, buf = cv2.imencode(".jpg", img)
            full = Box(0, 0, img.shape[1], img.shape[0])
            crop = PlateCrop("doctor", 0, time.time(), time.monotonic(), Detection(full, 1.0), full,
                             bytes(buf), 0.0, 0.0)
            t0 = time.monotonic()
            _, reads = reader.read_raw(crop)
            out["read"] = [r.plate for r in reads]
            out["detail"] += f"; a paid read answered in {time.monotonic() - t0:.2f} s: {out['read'] or 'no plate'}"
        return out
    except Forbidden as err:
        raise Verdict(f"token refused: {err}", "a valid token (app.platerecognizer.com), stored with "
                      "sudo plate-agent install; or the plan has no lookups left") from err
    except (ConnectionFailed, Timeout) as err:
        raise Verdict(f"no answer: {err}", f"network, DNS and reader.url ({shown}); for the SDK, "
                      "is its container running?") from err
    except AgentError as err:
        raise Verdict(str(err), f"reader.url ({shown}) must be the plate-reader endpoint") from err
    finally:
        reader.close()


def check_mqtt(cfg: Config, environ: Mapping[str, str]) -> dict[str, Any]:
    """Connect as the agent would (TLS, user), under a client id of its own, and publish once (QoS 1)."""
    import paho.mqtt.client as mqtt

    m = cfg.mqtt
    client_id = (m.client_id or f"plate-agent-{socket.gethostname()}") + "-doctor"  # never kicks the agent off
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    done = threading.Event()
    answer: list[Any] = []

    def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        answer.append(reason)
        done.set()

    c.on_connect = on_connect
    where = f"{m.host}:{m.port}" + (" (TLS)" if m.tls else "")
    if m.username:
        c.username_pw_set(m.username, secret("MQTT_PASSWORD", environ))
    try:
        if m.tls:
            c.tls_set(ca_certs=m.ca_file or None)
        t0 = time.monotonic()
        c.connect(m.host, m.port, keepalive=m.keepalive_s)
        c.loop_start()
        if not done.wait(MQTT_WAIT_S):
            raise Verdict(f"{where}: no CONNACK in {MQTT_WAIT_S:g} s", "the broker's port and listener")
        if answer[0].is_failure:
            raise Verdict(f"{where}: refused: {answer[0]}", "mqtt.username and the mqtt_password credential "
                          "(/etc/plate-agent/mqtt_password), the broker's ACL")
        info = c.publish(f"{m.prefix.rstrip('/')}/doctor", b"doctor", qos=1)
        info.wait_for_publish(MQTT_WAIT_S)
        if not info.is_published():
            raise Verdict(f"{where}: connected, but a QoS 1 publish was not acknowledged",
                          f"the broker's ACL must let {m.username or 'this client'} publish to {m.prefix}/#")
        return {"detail": f"{where}: connected and published in {time.monotonic() - t0:.2f} s"
                          + (f" as {m.username}" if m.username else "")}
    except (OSError, ValueError, RuntimeError) as err:  # refused, unreachable, TLS, or the link lost
        raise Verdict(f"{where}: {type(err).__name__}: {err}", "mqtt.host and mqtt.port; with tls = true, "
                      "mqtt.ca_file and the broker's certificate name") from err
    finally:
        c.disconnect()
        c.loop_stop()


def check_relay(cfg: Config, **driver_kw: Any) -> dict[str, Any]:
    """One pulse, then off: this moves the barrier."""
    from ..sinks.relay import relay_test

    out = io.StringIO()
    if relay_test(cfg.relay, out=out, **driver_kw) != 0:
        raise Verdict(out.getvalue().strip().splitlines()[-1], "relay.port or relay.pin; stop the service first "
                      "(it holds the relay): sudo systemctl stop plate-agent; the gpio or dialout group")
    return {"detail": f"{cfg.relay.type} relay pulsed {cfg.relay.pulse_s:g} s and is off"}


__all__ = ["Verdict", "check_camera", "check_detector", "check_mqtt", "check_reader", "check_relay", "test_image"]
