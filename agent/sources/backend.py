"""Which library reads a camera: PyAV for network streams where it is installed (it can decode
only keyframes while the camera is idle), OpenCV for USB cameras, files, and as the fallback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..config import CameraConfig
from .idle import IdleDecoding
from .opencv import FrameSource, OpenCVSource, source_kind

logger = logging.getLogger(__name__)


def pyav_available() -> bool:
    """PyAV imports here (no wheel on 32-bit ARM, for one)."""
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def _opencv(cfg: CameraConfig, idle: IdleDecoding | None) -> FrameSource:
    return OpenCVSource(cfg)


def _pyav(cfg: CameraConfig, idle: IdleDecoding | None) -> FrameSource:
    from .pyav import PyAVSource  # only where it is used: importing the agent does not load FFmpeg

    return PyAVSource(cfg, idle=idle)


BACKENDS: dict[str, Callable[[CameraConfig, IdleDecoding | None], FrameSource]] = {
    "opencv": _opencv,
    "pyav": _pyav,
}


def backend_for(cfg: CameraConfig) -> str:
    """"pyav" for a network stream unless the camera says opencv (auto: when PyAV imports), else "opencv"."""
    if source_kind(cfg) != "rtsp" or cfg.backend == "opencv":
        return "opencv"
    return "pyav" if pyav_available() else "opencv"  # "pyav" without PyAV: check-config refuses it


def make_source(cfg: CameraConfig, idle: IdleDecoding | None = None) -> FrameSource:
    """A new connection to the camera; the capture calls this once per connection."""
    return BACKENDS[backend_for(cfg)](cfg, idle)


__all__ = ["BACKENDS", "backend_for", "make_source", "pyav_available"]
