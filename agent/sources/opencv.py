"""Stage 1, frames: one connection to a camera (RTSP stream, USB/V4L2 device or video file).

A FrameSource opens, returns decoded BGR images one by one and closes. It is owned by a single
thread (see agent.sources.capture, which adds the latest-frame slot, reconnects and the read watchdog).
"""

from __future__ import annotations

import logging
import math
import os
import threading
from pathlib import Path
from typing import Any, Protocol
from collections.abc import Callable

import cv2

from ..config import CameraConfig
from ..errors import SourceError
from .. import redact
from ..types import Image

logger = logging.getLogger(__name__)

_FFMPEG_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_FALLBACK_FPS = 25.0  # pace for a file whose container does not say its rate
# FFmpeg's H.264 decoders for ``decoder``; OpenCV picks one by name from its "video_codec" option
# and fails the open when its FFmpeg build lacks it
HW_DECODERS = {"v4l2m2m": "h264_v4l2m2m", "nvdec": "h264_cuvid"}
_absent: set[str] = set()  # hardware decoders that failed to open once: not tried again
# FFmpeg's software decoder threads per camera (its default is a frame thread per core, each with
# its own copy of the decoder's buffers): one decodes 720p15 at the same CPU, a frame sooner, and
# saves ~5 MB and three threads per camera (BENCHMARKS.md "Memory with four cameras")
DECODER_THREADS = 1


class EndOfStream(SourceError):
    """A video file has no more frames and ``loop`` is off: the capture ends, it does not retry."""


class FrameSource(Protocol):
    """One connection to a camera, used by one thread at a time.

    ``open()`` blocks for at most about the open timeout and raises SourceError.
    ``read()`` blocks until the next frame and returns it, or None for a frame that could not be
    decoded (the caller counts and skips it); it raises EndOfStream at the end of a file and
    SourceError when the connection failed (the caller then closes this source and makes a new one).
    A recorded source may also expose ``frame_interval_s: float``, the pace at which to deliver
    its frames (0 or absent: as fast as ``read()`` returns).
    """

    def open(self) -> None: ...

    def read(self) -> Image | None: ...

    def close(self) -> None: ...

    def properties(self) -> dict[str, Any]:
        """What the stream says of itself once open: ``fps``, ``codec`` (``doctor`` shows them)."""
        ...


def source_kind(cfg: CameraConfig) -> str:
    """``cfg.type``, or for "auto" what the source string looks like: "rtsp", "usb" or "file"."""
    if cfg.type != "auto":
        return cfg.type
    src = cfg.source.strip()
    if src.isdigit() or src.startswith("/dev/"):
        return "usb"
    scheme = src.split("://", 1)[0].lower() if "://" in src else ""
    if scheme == "file":
        return "file"
    if scheme:
        return "rtsp"  # rtsp, rtsps, http(s), rtmp...: a network stream through FFmpeg
    return "file"


class _FfmpegOptions:
    """OpenCV reads FFmpeg options from one process-wide environment variable at open time.

    Opens that need the same options run concurrently; an open that needs different ones waits
    until the others have finished, so two cameras with different transports never race.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._value: str | None = None
        self._users = 0
        self._saved: str | None = None

    def acquire(self, value: str) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._users == 0 or self._value == value)
            if self._users == 0:
                self._saved = os.environ.get(_FFMPEG_ENV)
                os.environ[_FFMPEG_ENV] = value
                self._value = value
            self._users += 1

    def release(self) -> None:
        with self._cond:
            self._users -= 1
            if self._users == 0:
                if self._saved is None:
                    os.environ.pop(_FFMPEG_ENV, None)
                else:
                    os.environ[_FFMPEG_ENV] = self._saved
                self._value = None
                self._cond.notify_all()


_FFMPEG_OPTIONS = _FfmpegOptions()


def _ffmpeg_options(transport: str | None, inherited: str | None, codec: str = "") -> str:
    """Options from the environment (an operator's override), with our RTSP transport and decoder."""
    ours = ("rtsp_transport;", "video_codec;") if codec else ("rtsp_transport;",)
    pairs = [p for p in (inherited or "").split("|") if p and not p.startswith(ours)]
    if transport:
        pairs.append(f"rtsp_transport;{transport}")
    if codec:
        pairs.append(f"video_codec;{codec}")
    return "|".join(pairs)


class OpenCVSource:
    """A FrameSource over cv2.VideoCapture: RTSP via FFmpeg, USB via V4L2, files via FFmpeg.

    ``opener`` stands in for cv2.VideoCapture in tests.
    """

    def __init__(self, cfg: CameraConfig, *, opener: Callable[..., Any] | None = None) -> None:
        self.cfg = cfg
        self.kind = source_kind(cfg)
        self.name = redact.url(cfg.source)  # as logs and error messages show it
        self.frame_interval_s = 0.0
        self.loops = 0  # times a looping file started again
        self._opener = opener if opener is not None else cv2.VideoCapture
        self._cap: Any = None
        self.decoder = "software"  # what decodes this connection

    def open(self) -> None:
        if self._cap is not None:
            return
        codec = HW_DECODERS.get(self.cfg.decoder, "") if self.kind != "usb" else ""
        cap = self._open_with(codec) if codec and codec not in _absent else None
        if cap is None:
            cap = self._open_with("")
            if cap is None:
                raise SourceError(self._open_failure())
        else:
            self.decoder = self.cfg.decoder
        self._cap = cap
        if self.kind == "usb":
            self._apply_usb_settings(cap)
        if self.kind == "file" and self.cfg.realtime:
            fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
            self.frame_interval_s = 1.0 / (fps if 1.0 <= fps <= 240.0 else _FALLBACK_FPS)

    def _open_with(self, codec: str) -> Any:
        """An opened capture, decoding with ``codec`` ("" = FFmpeg's default); None when it did not open.
        A hardware decoder that does not open is logged once and not tried again."""
        try:
            if self.kind == "usb":
                cap = self._open_usb()
            else:
                cap = self._open_stream(codec) if self.kind == "rtsp" else self._open_file(codec)
            opened = bool(cap.isOpened())
        except cv2.error as err:
            if not codec:
                raise SourceError(f"{self.kind} source {self.name}: rejected by the video backend") from err
            cap, opened = None, False
        if opened:
            return cap
        if cap is not None:
            _release(cap)
        if codec:
            _absent.add(codec)
            logger.warning("camera=%s decoder=%s unavailable in this FFmpeg build (or the stream is not H.264): "
                           "decoding in software", self.cfg.id, codec)
        return None

    def read(self) -> Image | None:
        if self._cap is None:
            raise SourceError(f"{self.kind} source {self.name}: read before open")
        ok, image = self._read_once()
        if ok:
            return image
        if self.kind != "file":
            raise SourceError(f"{self.kind} source {self.name}: stopped delivering frames")
        if not self.cfg.loop:
            raise EndOfStream(f"file {self.name}: end of file")
        self.close()  # reopening is the one way back to frame 0 that every container supports
        self.open()
        self.loops += 1
        ok, image = self._read_once()
        if not ok:
            raise SourceError(f"file {self.name}: no readable frames")
        return image

    def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            _release(cap)

    def properties(self) -> dict[str, Any]:
        """What the backend says of the open stream: its frame rate and codec (``doctor`` shows them)."""
        if self._cap is None:
            return {}
        fourcc = int(self._cap.get(cv2.CAP_PROP_FOURCC) or 0)
        codec = "".join(chr((fourcc >> 8 * i) & 0xFF) for i in range(4)).strip("\0 ")
        fps = round(float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0), 2)
        return {"fps": fps, "codec": codec if codec.isprintable() else ""}

    # ------------------------------------------------------------ per kind

    def _read_once(self) -> tuple[bool, Image | None]:
        try:
            ok, image = self._cap.read()
        except cv2.error as err:
            raise SourceError(f"{self.kind} source {self.name}: decoding failed") from err
        return bool(ok), image

    def _open_stream(self, codec: str = "") -> Any:
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(self.cfg.open_timeout_s * 1000),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(self.cfg.read_timeout_s * 1000),
            cv2.CAP_PROP_N_THREADS, DECODER_THREADS,
        ]  # fmt: skip
        rtsp = self.cfg.source.lower().startswith(("rtsp://", "rtsps://"))
        if not rtsp and not codec:
            return self._opener(self.cfg.source, cv2.CAP_FFMPEG, params)
        return self._with_options(self.cfg.source, params, self.cfg.rtsp_transport if rtsp else None, codec)

    def _with_options(self, target: str, params: list[int], transport: str | None, codec: str) -> Any:
        value = _ffmpeg_options(transport, os.environ.get(_FFMPEG_ENV), codec)
        _FFMPEG_OPTIONS.acquire(value)
        try:
            return self._opener(target, cv2.CAP_FFMPEG, params)
        finally:
            _FFMPEG_OPTIONS.release()

    def _open_usb(self) -> Any:
        src = self.cfg.source.strip()
        device: int | str = int(src) if src.isdigit() else src
        return self._opener(device, cv2.CAP_V4L2)

    def _apply_usb_settings(self, cap: Any) -> None:
        """Ask the driver for the configured format (fourcc first: it limits sizes and rates)."""
        cfg = self.cfg
        wanted: list[tuple[str, int, float]] = []
        if cfg.fourcc:
            wanted.append(("fourcc", cv2.CAP_PROP_FOURCC, float(cv2.VideoWriter.fourcc(*cfg.fourcc))))
        if cfg.width:
            wanted.append(("width", cv2.CAP_PROP_FRAME_WIDTH, float(cfg.width)))
        if cfg.height:
            wanted.append(("height", cv2.CAP_PROP_FRAME_HEIGHT, float(cfg.height)))
        if cfg.fps:
            wanted.append(("fps", cv2.CAP_PROP_FPS, float(cfg.fps)))
        for key, prop, value in wanted:
            try:
                cap.set(prop, value)
                got = float(cap.get(prop))
            except cv2.error:
                got = math.nan
            if not math.isclose(got, value, rel_tol=0.01):
                logger.warning(
                    "camera=%s source=%s setting=%s wanted=%g got=%g: the device chose its own",
                    cfg.id,
                    self.name,
                    key,
                    value,
                    got,
                )

    def _open_file(self, codec: str = "") -> Any:
        path = self.cfg.source[len("file://") :] if self.cfg.source.startswith("file://") else self.cfg.source
        if not Path(path).is_file():
            raise SourceError(f"file {self.name}: not found")
        params = [cv2.CAP_PROP_N_THREADS, DECODER_THREADS]
        if codec:
            return self._with_options(path, params, None, codec)
        return self._opener(path, cv2.CAP_FFMPEG, params)

    def _open_failure(self) -> str:
        if self.kind == "rtsp":
            return (
                f"stream {self.name}: cannot open (no answer within {self.cfg.open_timeout_s:g} s,"
                " refused, wrong path or credentials, or not a video stream)"
            )
        if self.kind == "usb":
            return (
                f"camera {self.name}: cannot open (no such device, busy, or no permission:"
                " is the service user in the 'video' group?)"
            )
        return f"file {self.name}: cannot open (unreadable or not a supported video)"


def _release(cap: Any) -> None:
    try:
        cap.release()
    except cv2.error:
        logger.debug("release failed", exc_info=True)


__all__ = ["HW_DECODERS", "EndOfStream", "FrameSource", "OpenCVSource", "source_kind"]
