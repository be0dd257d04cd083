"""One-shot read of an image file for ``plate-agent probe``: image in, the full read as JSON out."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .. import redact
from ..config import ReaderConfig
from ..errors import ConfigError, ReaderError
from ..types import Box, Detection, PlateCrop, PlateRead


def read_to_dict(read: PlateRead) -> dict[str, Any]:
    """A JSON-ready view of one read (the crop's JPEG left out)."""
    v = read.vehicle
    return {
        "camera_id": read.camera_id,
        "plate": read.plate,
        "score": read.score,
        "dscore": read.dscore,
        "box": read.box.as_dict(),
        "region": read.region,
        "region_score": read.region_score,
        "candidates": [{"plate": c.plate, "score": c.score} for c in read.candidates],
        "vehicle": None
        if v is None
        else {
            "type": v.type,
            "score": v.score,
            "box": v.box.as_dict() if v.box else None,
            "make": v.make,
            "model": v.model,
            "color": v.color,
            "orientation": v.orientation,
        },
        "wall_time": read.wall_time,
        "late": read.late,
        "extra": read.extra,
    }


def read_image(
    path: str | Path, cfg: ReaderConfig, *, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Send a whole image file to the configured reader once; raises ConfigError / ReaderError."""
    from . import READERS  # here, not at import: the package imports this module

    if cfg.type not in READERS:
        raise ConfigError(f"reader.type: {cfg.type!r} reads nothing; set \"cloud\" or \"sdk\"")
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as err:
        raise ConfigError(f"{p}: cannot read: {err.strerror or err}") from err
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ConfigError(f"{p}: not an image OpenCV can decode")
    h, w = img.shape[:2]
    if data[:2] != b"\xff\xd8":  # the API takes JPEG; convert anything else
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        if not ok:
            raise ReaderError(f"{p}: cannot encode as JPEG")
        data = bytes(buf)
    now = time.time()
    full = Box(0, 0, w, h)
    crop = PlateCrop("probe", 0, now, time.monotonic(), Detection(full, 1.0), full, data, 0.0, 0.0)
    reader = READERS[cfg.type](cfg, environ=environ)
    try:
        t0 = time.monotonic()
        doc, reads = reader.read_raw(crop)
        elapsed = time.monotonic() - t0
    finally:
        reader.close()
    return {
        "image": {"path": str(p), "width": w, "height": h, "bytes": len(data)},
        "reader": {"type": cfg.type, "url": redact.url(reader.url)},
        "elapsed_s": round(elapsed, 3),
        "reads": [read_to_dict(r) for r in reads],
        "response": doc,
    }


__all__ = ["read_image", "read_to_dict"]
