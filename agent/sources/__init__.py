"""Stage 1, frames: camera connections (``opencv``: RTSP / USB / file; ``pyav``: network streams,
keyframes only while idle; ``backend`` picks one), the idle state a camera's pipeline hands its
source (``idle``) and the capture thread per camera that keeps only the newest frame (``capture``:
latest-frame slot, reconnect, read watchdog).
"""

from .backend import BACKENDS, backend_for, make_source, pyav_available
from .capture import Capture, check_image
from .idle import IdleDecoding
from .opencv import EndOfStream, FrameSource, OpenCVSource, source_kind

__all__ = ["BACKENDS", "Capture", "EndOfStream", "FrameSource", "IdleDecoding", "OpenCVSource", "backend_for",
           "check_image", "make_source", "pyav_available", "source_kind"]
