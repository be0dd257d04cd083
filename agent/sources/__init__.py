"""Stage 1, frames: camera connections (``opencv``: RTSP / USB / file) and the capture thread per
camera that keeps only the newest frame (``capture``: latest-frame slot, reconnect, read watchdog).
"""

from .capture import Capture, check_image
from .opencv import SOURCES, EndOfStream, FrameSource, OpenCVSource, make_source, source_kind

__all__ = ["SOURCES", "Capture", "EndOfStream", "FrameSource", "OpenCVSource", "check_image", "make_source",
           "source_kind"]
