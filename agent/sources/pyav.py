"""Stage 1, frames: a network stream read with PyAV (FFmpeg's libraries, its own wheel). While the
camera is idle it decodes only keyframes and keeps the packets since the last one, so that on
motion it can decode them (catch-up) and deliver the current frame at once.

Same FrameSource contract and failure wording as OpenCVSource: SourceError on every failure (the
capture reconnects), None for a frame that did not decode, passwords never in a message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import av
import av.error

from .. import redact
from ..config import CameraConfig
from ..errors import SourceError
from ..types import Image
from .idle import FULL, KEYFRAMES, IdleDecoding
# one decoder thread, as for OpenCV: the same CPU as 2 or FFmpeg's default on a 720p stream
# (BENCHMARKS.md, keyframes), less memory, and a keyframe comes out as soon as it goes in
from .opencv import DECODER_THREADS, HW_DECODERS, source_kind

logger = logging.getLogger(__name__)

# while idle, a keyframe not seen within this share of read_timeout_s (a GOP longer than the
# timeout allows) is not waited for: the kept packets are decoded so a frame still comes in time
IDLE_WAIT_FRACTION = 0.75
_absent: set[str] = set()  # hardware decoders that failed to open in this FFmpeg: not tried again


class PyAVSource:
    """A FrameSource over ``av.open`` for RTSP and other network streams.

    ``idle`` carries the camera's motion state (set by its pipeline); without it every frame is
    decoded.
    """

    def __init__(self, cfg: CameraConfig, *, idle: IdleDecoding | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self._clock = clock
        self.kind = source_kind(cfg)
        self.name = redact.url(cfg.source)  # as logs and error messages show it
        self.frame_interval_s = 0.0  # a live stream paces itself
        self.decoder = "software"  # what decodes this connection
        self.idle = idle if idle is not None else IdleDecoding(enabled=False)
        self._container: Any = None
        self._stream: Any = None
        self._codec: Any = None
        self._packets: Any = None  # the demuxer's packet iterator
        self._kept: list[Any] = []  # non-key packets since the last decoded frame, while idle
        self._pending: Any = None  # a packet read ahead, for the next read
        self._synced = False  # a keyframe has come on this connection: packets can be decoded
        self._corrupt = False  # the last packet decoded did not decode
        self._opened_at = 0.0

    def open(self) -> None:
        if self._container is not None:
            return
        rtsp = self.cfg.source.lower().startswith(("rtsp://", "rtsps://"))
        options: dict[str, str] = {"rtsp_transport": self.cfg.rtsp_transport} if rtsp else {}
        try:
            container = av.open(self.cfg.source, options=options,
                                timeout=(self.cfg.open_timeout_s, self.cfg.read_timeout_s))
        except (av.error.FFmpegError, OSError) as err:
            # not chained: FFmpeg's error carries the URL, password included
            raise SourceError(f"stream {self.name}: cannot open ({_why(err)}; no answer within "
                              f"{self.cfg.open_timeout_s:g} s, refused, wrong path or credentials, "
                              "or not a video stream)") from None
        if not container.streams.video:
            container.close()
            raise SourceError(f"stream {self.name}: has no video")
        self._container = container
        self._stream = container.streams.video[0]
        self._codec = self._open_decoder(self._stream)
        self._packets = container.demux(self._stream)
        self._opened_at = self._clock()

    def _open_decoder(self, stream: Any) -> Any:
        """The hardware decoder when asked for and this FFmpeg opens it, else FFmpeg's software one."""
        name = HW_DECODERS.get(self.cfg.decoder, "")
        if name and name not in _absent:
            try:
                ctx = av.CodecContext.create(name, "r")
                ctx.extradata = stream.codec_context.extradata
                ctx.open()
                self.decoder = self.cfg.decoder
                return ctx
            except (av.error.FFmpegError, OSError, ValueError) as err:
                _absent.add(name)
                logger.warning("camera=%s decoder=%s unavailable (%s): decoding in software",
                               self.cfg.id, name, _why(err))
        ctx = stream.codec_context
        ctx.thread_count = DECODER_THREADS
        return ctx

    def read(self) -> Image | None:
        if self._packets is None:
            raise SourceError(f"{self.kind} source {self.name}: read before open")
        deadline = self._clock() + IDLE_WAIT_FRACTION * self.cfg.read_timeout_s
        while True:
            packet = self._next_packet()
            if packet.is_keyframe:
                self._synced = True
                self._kept.clear()  # a keyframe needs nothing before it
            elif not self._synced:  # joined mid-GOP: nothing to decode it against yet
                if self._clock() - self._opened_at < IDLE_WAIT_FRACTION * self.cfg.read_timeout_s:
                    self.idle.skipped()
                    continue
                self._synced = True  # a stream that flags no keyframe (intra refresh): decode it all
                logger.warning("camera=%s no keyframe within %.1f s: decoding every frame",
                               self.cfg.id, IDLE_WAIT_FRACTION * self.cfg.read_timeout_s)
            if self.idle.idle:
                if packet.is_keyframe:
                    self.idle.decoding(KEYFRAMES)
                    image = self._keyframe(packet)
                    if image is not None:
                        return image
                    continue
                self._kept.append(packet)
                self.idle.skipped()
                if self._clock() < deadline:
                    continue
                return self._decode(self._take_kept())  # no keyframe in time: catch up instead
            if self._kept or self.idle.mode == KEYFRAMES:
                return self._wake(packet)
            image = self._decode([packet])
            if image is not None or self._corrupt:
                return image

    def _keyframe(self, packet: Any) -> Image | None:
        """Decode a keyframe with the packets right after it that carry the rest of its picture (a
        keyframe can come split: parameter sets and slices in packets of their own, one timestamp)."""
        packets = [packet]
        while True:
            after = self._next_packet()
            if not (after.is_keyframe and packet.pts is not None and after.pts == packet.pts):
                self._pending = after  # the next read starts with it
                break
            packets.append(after)
        image = self._decode(packets)
        if image is not None:
            self.idle.keyframe()
        return image

    def _wake(self, packet: Any) -> Image | None:
        """Motion: decode the packets kept since the last keyframe, then this one; the last is current."""
        packets = [*self._take_kept(), packet]
        started = time.perf_counter()
        image = self._decode(packets)
        self.idle.decoding(FULL)
        self.idle.woke(time.perf_counter() - started, len(packets) - 1)
        return image

    def _take_kept(self) -> list[Any]:
        kept, self._kept = self._kept, []
        return kept

    def _next_packet(self) -> Any:
        if self._pending is not None:
            packet, self._pending = self._pending, None
            return packet
        while True:
            try:
                packet = next(self._packets)
            except StopIteration:
                raise SourceError(f"{self.kind} source {self.name}: stopped delivering frames") from None
            except (av.error.FFmpegError, OSError) as err:  # a read timeout, a dropped connection
                raise SourceError(f"{self.kind} source {self.name}: stopped delivering frames "
                                  f"({_why(err)})") from None
            if packet.size:  # an empty packet flushes the decoder at the end of the stream
                return packet

    def _decode(self, packets: list[Any]) -> Image | None:
        """Feed ``packets`` in order; the last frame that came out, as BGR (None: none came out, or
        the last packet did not decode: ``_corrupt``)."""
        last = None
        self._corrupt = False
        for packet in packets:
            try:
                frames = self._codec.decode(packet)
            except av.error.FFmpegError:  # a corrupt packet: the next keyframe repairs the picture
                last, self._corrupt = None, True
                continue
            if frames:
                last, self._corrupt = frames[-1], False
        if last is None:
            return None
        image: Image = last.to_ndarray(format="bgr24")
        return image

    def close(self) -> None:
        container, self._container = self._container, None
        self._packets = self._codec = self._stream = None
        self._kept, self._pending = [], None
        if container is not None:
            try:
                container.close()
            except (av.error.FFmpegError, OSError):
                logger.debug("close failed camera=%s", self.cfg.id, exc_info=True)

    def properties(self) -> dict[str, Any]:
        """What the stream says of itself: frame rate and codec (``doctor`` shows them)."""
        if self._stream is None:
            return {}
        rate = self._stream.average_rate or self._stream.guessed_rate
        return {"fps": round(float(rate), 2) if rate else 0.0, "codec": self._stream.codec_context.name or ""}


def _why(err: Exception) -> str:
    """FFmpeg's reason, without the URL it may quote."""
    reason = getattr(err, "strerror", None) or type(err).__name__
    return redact.text(str(reason))


__all__ = ["PyAVSource"]
