"""Stage 1 through PyAV: frames from the real RTSP test server, open and read timeouts, redacted
passwords, keyframes only while idle and the catch-up on waking (bit-exact against a full decode
of an H.264 clip made here), the hardware decoder's fallback, and OpenCV when PyAV is absent."""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from agent.config import CameraConfig, check_files, parse
from agent.errors import SourceError
from agent.sources import IdleDecoding, OpenCVSource, backend_for, make_source
from agent.sources.capture import Capture

from .fixtures_rtsp import RtspServer, free_port
from .test_sources import wait_until

from agent.sources import pyav as pyav_source
from agent.sources.pyav import PyAVSource

FPS, GOP = 15, 15  # the clip: a keyframe a second, as the test server sends


def camera(**over: Any) -> CameraConfig:
    base = {"id": "gate", "source": "rtsp://127.0.0.1:1/x", "open_timeout_s": 3.0, "read_timeout_s": 1.5,
            "reconnect_max_s": 1.0}
    return parse({"cameras": [{**base, **over}]}).cameras[0]


# ------------------------------------------------------------------ a clip made here


def frame_image(i: int, rng: np.random.Generator) -> np.ndarray:
    """A textured scene with a bar that moves 8 px a frame, so every frame differs from its neighbours."""
    img = rng.integers(60, 120, (240, 320, 3), dtype=np.uint8)
    x = (8 * i) % 300
    img[60:180, x:x + 20] = 230
    return img


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 s of H.264 at 15 fps, a keyframe every 15 frames, no B-frames (as cameras send)."""
    path = tmp_path_factory.mktemp("pyav") / "gop1.mp4"
    rng = np.random.default_rng(3)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.options = {"g": str(GOP), "keyint_min": str(GOP), "sc_threshold": "0", "bf": "0",
                          "preset": "ultrafast"}
        for i in range(3 * FPS):
            frame = av.VideoFrame.from_ndarray(frame_image(i, rng), format="bgr24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


@pytest.fixture(scope="module")
def reference(clip: Path) -> list[np.ndarray]:
    """Every frame of the clip decoded in full, in order."""
    src = PyAVSource(camera(source=str(clip)))
    src.open()
    frames = []
    with pytest.raises(SourceError, match="stopped delivering"):  # the end of a file, for a stream source
        while True:
            image = src.read()
            assert image is not None
            frames.append(image)
    src.close()
    assert len(frames) == 3 * FPS
    return frames


def index_of(image: np.ndarray, reference: list[np.ndarray]) -> int:
    """The reference frame ``image`` is, bit for bit (-1: none)."""
    return next((i for i, ref in enumerate(reference) if np.array_equal(ref, image)), -1)


class CountingDecoder:
    """Stands in front of the source's decoder and counts the packets fed to it."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.fed = inner, 0

    def decode(self, packet: Any) -> Any:
        self.fed += 1
        return self.inner.decode(packet)


class WakeAfter(IdleDecoding):
    """Idle from the start; the motion gate sees something after ``after`` packets were kept."""

    def __init__(self, after: int) -> None:
        super().__init__(enabled=True)
        self.after = after
        self.set_idle(True)

    def skipped(self) -> None:
        super().skipped()
        if self.stats()["packets_skipped"] == self.after:
            self.set_idle(False)


def opened(cfg: CameraConfig, idle: IdleDecoding | None = None) -> tuple[PyAVSource, CountingDecoder]:
    src = PyAVSource(cfg, idle=idle)
    src.open()
    counter = CountingDecoder(src._codec)
    src._codec = counter
    return src, counter


def test_idle_decodes_only_keyframes(clip: Path, reference: list[np.ndarray]) -> None:
    idle = IdleDecoding(enabled=True)
    idle.set_idle(True)
    src, decoder = opened(camera(source=str(clip)), idle)
    got = [index_of(src.read(), reference) for _ in range(3)]  # type: ignore[arg-type]
    src.close()
    assert got == [0, GOP, 2 * GOP]  # the keyframes, decoded exactly
    assert decoder.fed == 3  # and nothing else went into the decoder
    st = idle.stats()
    assert st["mode"] == "keyframes" and st["keyframes"] == 3 and st["packets_skipped"] == 2 * (GOP - 1)


def test_idle_off_decodes_every_frame(clip: Path, reference: list[np.ndarray]) -> None:
    idle = IdleDecoding(enabled=False)  # idle_keyframes = false
    idle.set_idle(True)
    src, decoder = opened(camera(source=str(clip)), idle)
    got = [index_of(src.read(), reference) for _ in range(GOP + 1)]  # type: ignore[arg-type]
    src.close()
    assert got == list(range(GOP + 1)) and decoder.fed == GOP + 1 and idle.stats()["mode"] == "full"


@pytest.mark.parametrize(("kept", "caught_up"), [(1, 1), (6, 6), (GOP - 2, GOP - 2), (GOP - 1, 0)])
def test_waking_catches_up_to_the_current_frame(clip: Path, reference: list[np.ndarray], kept: int,
                                                caught_up: int) -> None:
    """Motion comes while non-key packets are kept: the next frame is the current one, decoded
    from the keyframe through the kept packets, identical to a full decode; then every frame.
    (Woken just before a keyframe, the keyframe alone is decoded.)"""
    idle = WakeAfter(kept)
    src, decoder = opened(camera(source=str(clip)), idle)
    assert index_of(src.read(), reference) == 0  # type: ignore[arg-type]  # idle: the keyframe
    assert decoder.fed == 1
    woke = src.read()
    assert woke is not None and index_of(woke, reference) == kept + 1  # not grey, not stale: current
    assert decoder.fed == 1 + caught_up + 1
    after = [index_of(src.read(), reference) for _ in range(GOP)]  # type: ignore[arg-type]
    src.close()
    assert after == list(range(kept + 2, kept + 2 + GOP))
    st = idle.stats()
    assert st["mode"] == "full" and st["wakes"] == 1 and st["catch_up_packets"] == caught_up
    assert st["catch_up_ms_max"] is not None and st["wake_ms_max"] is not None


def test_a_gop_longer_than_the_read_timeout_still_delivers_in_time(clip: Path,
                                                                  reference: list[np.ndarray]) -> None:
    """While idle no keyframe comes within 3/4 of the read timeout: the kept packets are decoded
    instead, so the capture's watchdog never sees a read that slow."""
    idle = IdleDecoding(enabled=True)
    idle.set_idle(True)
    now = [0.0]
    src = PyAVSource(camera(source=str(clip), read_timeout_s=0.5), idle=idle, clock=lambda: now[0])
    src.open()
    decoder = CountingDecoder(src._codec)
    src._codec = decoder
    assert index_of(src.read(), reference) == 0  # type: ignore[arg-type]
    real_next = src._next_packet

    def slow_next() -> Any:  # a packet every 62.5 ms (exact in binary): the keyframe would come 0.94 s on
        now[0] += 0.0625
        return real_next()

    src._next_packet = slow_next  # type: ignore[method-assign]
    image = src.read()
    src.close()
    # 0.375 s (3/4 of the timeout) on: the 6 packets kept so far, decoded; the last is the frame
    assert image is not None and index_of(image, reference) == 6
    assert decoder.fed == 1 + 6 and idle.stats()["mode"] == "keyframes"


def test_a_hardware_decoder_absent_here_falls_back_to_software(
    clip: Path, reference: list[np.ndarray], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """This machine has neither a V4L2 M2M device nor CUDA: the decoder fails to open, once, and
    frames come from FFmpeg's software decoder. (The hardware path needs the board.)"""
    monkeypatch.setattr(pyav_source, "_absent", set())
    for decoder in ("v4l2m2m", "nvdec", "v4l2m2m"):
        src = PyAVSource(camera(source=str(clip), decoder=decoder))
        src.open()
        image = src.read()
        src.close()
        assert src.decoder == "software" and image is not None and index_of(image, reference) == 0
    warned = [r.getMessage() for r in caplog.records if "unavailable" in r.getMessage()]
    assert len(warned) == 2 and "h264_v4l2m2m" in warned[0] and "h264_cuvid" in warned[1]  # each tried once


# ------------------------------------------------------------------ which backend


def test_auto_picks_pyav_for_network_streams_only() -> None:
    assert backend_for(camera(source="rtsp://10.0.0.5/h264")) == "pyav"
    assert backend_for(camera(source="rtsp://10.0.0.5/h264", backend="opencv")) == "opencv"
    assert backend_for(camera(source="/dev/video0", backend="pyav")) == "opencv"  # USB: always OpenCV
    assert backend_for(camera(source="/clips/gate.mp4")) == "opencv"
    assert isinstance(make_source(camera(source="rtsp://10.0.0.5/h264")), PyAVSource)


def test_without_pyav_network_streams_use_opencv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "av", None)  # import av raises ImportError, as on armv7
    cfg = camera(source="rtsp://10.0.0.5/h264")
    assert backend_for(cfg) == "opencv" and isinstance(make_source(cfg), OpenCVSource)
    explicit = parse({"cameras": [{"id": "gate", "source": "rtsp://10.0.0.5/h264", "backend": "pyav"}]})
    errors, _ = check_files(explicit)
    assert errors == ['cameras[0].backend: "pyav" needs PyAV (pip install av), which is not installed']
    assert check_files(parse({"cameras": [{"id": "gate", "source": "rtsp://10.0.0.5/h264"}]}))[0] == []


def test_an_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match=r"cameras\[0\]\.backend"):
        parse({"cameras": [{"id": "gate", "source": "rtsp://x/y", "backend": "gstreamer"}]})


# ------------------------------------------------------------------ opening


def test_open_against_a_dead_port_is_clean_and_redacted() -> None:
    src = PyAVSource(camera(source=f"rtsp://admin:s3cret@127.0.0.1:{free_port()}/stream", open_timeout_s=2.0))
    t0 = time.monotonic()
    with pytest.raises(SourceError) as exc:
        src.open()
    assert time.monotonic() - t0 < 2.0  # refused: no waiting for the timeout
    msg = str(exc.value)
    assert "s3cret" not in msg and "rtsp://***@127.0.0.1" in msg and "cannot open" in msg
    assert exc.value.__suppress_context__  # FFmpeg's error quotes the URL: no traceback shows it


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server that accepts connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    held: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not done.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    done.set()
    thread.join(2)
    for s in [*held, listener]:
        s.close()


def test_open_against_a_silent_server_times_out(silent_server: int) -> None:
    src = PyAVSource(camera(source=f"rtsp://admin:s3cret@127.0.0.1:{silent_server}/stream", open_timeout_s=1.0))
    t0 = time.monotonic()
    with pytest.raises(SourceError) as exc:
        src.open()
    took = time.monotonic() - t0
    assert 0.9 <= took < 3.0, took  # FFmpeg's own timeout, not the capture's watchdog
    assert "s3cret" not in str(exc.value) and "cannot open" in str(exc.value)


# ------------------------------------------------------------------ RTSP (real server)


@pytest.fixture
def captures() -> Iterator[list[Capture]]:
    made: list[Capture] = []
    yield made
    for c in made:
        c.close()


def capture(captures: list[Capture], cfg: CameraConfig, idle: IdleDecoding | None = None) -> Capture:
    assert backend_for(cfg) == "pyav"
    cap = Capture(cfg, threading.Event(), source_factory=lambda: make_source(cfg, idle))
    captures.append(cap)
    cap.start()
    return cap


@pytest.mark.slow
def test_rtsp_frames_flow(rtsp_server: RtspServer, captures: list[Capture]) -> None:
    cap = capture(captures, camera(source=rtsp_server.url))
    f = cap.latest(0, timeout=10)
    assert f is not None and f.image.shape == (360, 640, 3) and f.image.dtype == np.uint8
    assert wait_until(lambda: cap.stats()["fps_in"] >= 10, 5), cap.stats()
    st = cap.stats()
    assert st["connected"] and st["reconnects"] == 0 and st["corrupt"] == 0


def ball_frame(image: np.ndarray) -> bool:
    """The server's pattern: a white ball on black; FFmpeg's concealment of a missing reference is grey."""
    return float(np.median(image)) < 20 and int(image.max()) > 200


@pytest.mark.slow
def test_rtsp_idle_keyframes_then_wake(rtsp_server: RtspServer, captures: list[Capture]) -> None:
    idle = IdleDecoding(enabled=True)
    cap = capture(captures, camera(source=rtsp_server.url, read_timeout_s=2.0), idle)  # > GOP / 0.75
    assert cap.latest(0, timeout=10) is not None
    idle.set_idle(True)
    assert wait_until(lambda: idle.stats()["keyframes"] >= 3, 10)  # one a second
    frames0, skipped0, keys0 = cap.stats()["frames"], idle.stats()["packets_skipped"], idle.stats()["keyframes"]
    assert wait_until(lambda: idle.stats()["keyframes"] >= keys0 + 2, 5)
    st = idle.stats()
    new_frames = cap.stats()["frames"] - frames0
    # only keyframes decoded: a frame per keyframe (± the one being read), 14 packets skipped for each
    assert abs(new_frames - (st["keyframes"] - keys0)) <= 1, (new_frames, st)
    assert st["packets_skipped"] - skipped0 >= (GOP - 1) * (st["keyframes"] - keys0 - 1)
    assert st["mode"] == "keyframes"
    seq = cap.stats()["seq"]
    idle.set_idle(False)  # motion
    woke = cap.latest(seq, timeout=3)
    assert woke is not None and ball_frame(woke.image)
    assert wait_until(lambda: idle.stats()["wakes"] == 1 and cap.stats()["fps_in"] >= 10, 5), (idle.stats(),
                                                                                             cap.stats())
    seq = woke.seq
    for _ in range(20):  # every frame after the wake decodes cleanly
        f = cap.latest(seq, timeout=2)
        assert f is not None and ball_frame(f.image)
        seq = f.seq
    assert idle.stats()["mode"] == "full" and cap.stats()["corrupt"] == 0 and cap.stats()["reconnects"] == 0


@pytest.mark.slow
def test_rtsp_read_timeout_reconnects(rtsp_server: RtspServer, captures: list[Capture],
                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="agent.sources.capture")
    cfg = camera(source=rtsp_server.url.replace("rtsp://", "rtsp://admin:s3cret@"), read_timeout_s=1.5,
                 open_timeout_s=2.0)
    cap = capture(captures, cfg)
    assert cap.latest(0, timeout=10) is not None
    assert wait_until(lambda: cap.stats()["fps_in"] > 5, 5)
    rtsp_server.freeze()
    t0 = time.monotonic()
    assert wait_until(lambda: not cap.connected, cfg.read_timeout_s + 3.0)
    assert time.monotonic() - t0 < cfg.read_timeout_s + 2.0  # frames in flight may cover the first ~0.5 s
    rtsp_server.resume()
    seq = cap.stats()["seq"]
    f = cap.latest(seq, timeout=15)
    assert f is not None and f.seq > seq and cap.connected
    assert cap.stats()["reconnects"] >= 1
    assert "s3cret" not in caplog.text and "s3cret" not in cap.stats()["last_error"]


@pytest.mark.slow
def test_the_running_agent_decodes_keyframes_while_its_camera_sees_nothing(
        tmp_path: Path, rtsp_server_factory: Callable[..., RtspServer]) -> None:
    """The wiring end to end: a still stream, the motion gate quiet, the source told so; /status says it."""
    import json
    import urllib.error
    import urllib.request

    from agent.service import Service

    server = rtsp_server_factory(pattern="smpte75")  # still colour bars (smpte has a patch of snow)
    cfg = parse({"cameras": [{"id": "gate", "source": server.url}],
                 "storage": {"state_dir": str(tmp_path / "state")}, "status": {"port": 0},
                 "history": {"enabled": False}, "console": {"enabled": False}})
    service = Service(cfg)
    try:
        service.start()
        assert service.status.server is not None
        url = f"http://127.0.0.1:{service.status.server.port}/status"

        def decoding() -> dict[str, Any]:
            try:
                with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310 (loopback)
                    body = answer.read()
            except urllib.error.HTTPError as err:  # 503 until the camera delivers: the same document
                body = err.read()
            return json.loads(body)["cameras"]["gate"]["decoding"]  # type: ignore[no-any-return]

        assert wait_until(lambda: decoding()["keyframes"] >= 2, 20), decoding()
        st = decoding()
        assert st["backend"] == "pyav" and st["mode"] == "keyframes" and st["idle_keyframes"] is True
        assert st["packets_skipped"] >= (GOP - 1) * (st["keyframes"] - 1)
    finally:
        service.close()


class Unflagged:
    """A packet whose keyframe flag the demuxer did not set (a camera with intra refresh, no IDR)."""

    is_keyframe = False

    def __init__(self, inner: Any) -> None:
        self.inner, self.pts, self.size = inner, inner.pts, inner.size


class Unwrapping(CountingDecoder):
    def decode(self, packet: Any) -> Any:
        return super().decode(getattr(packet, "inner", packet))


@pytest.mark.parametrize("idle_on", [False, True])
def test_a_stream_that_flags_no_keyframe_is_still_decoded(clip: Path, reference: list[np.ndarray],
                                                          idle_on: bool) -> None:
    """No packet says it is a keyframe: after 3/4 of the read timeout the source decodes what comes
    instead of waiting for a keyframe for ever (and, idle, the kept packets catch it up)."""
    idle = IdleDecoding(enabled=True)
    idle.set_idle(idle_on)
    now = [0.0]
    src = PyAVSource(camera(source=str(clip), read_timeout_s=0.5), idle=idle, clock=lambda: now[0])
    src.open()
    src._codec = decoder = Unwrapping(src._codec)
    real_next = src._next_packet

    def unflagged_next() -> Any:  # a packet every 62.5 ms, none flagged
        now[0] += 0.0625
        return Unflagged(real_next())

    src._next_packet = unflagged_next  # type: ignore[method-assign]
    images = [src.read() for _ in range(4)]  # (None: a packet FFmpeg could not decode yet)
    src.close()
    # packets 0-4 came within 0.375 s and were skipped; from packet 5 on they are decoded (the clip's
    # frame 0, its one real keyframe, was skipped: the pictures are FFmpeg's best effort, not compared)
    assert any(i is not None and i.shape == (240, 320, 3) for i in images)
    assert idle.stats()["packets_skipped"] >= 5 and decoder.fed >= 1
