"""Reader test fixtures: deterministic crops and reader configs pointed at the test server."""

from __future__ import annotations

import time
from typing import Any

import cv2
import numpy as np
import pytest

from agent.config import ReaderConfig
from agent.types import Box, Detection, PlateCrop


def jpeg_of(width: int, height: int, seed: int = 0, quality: int = 90, noise: bool = False) -> bytes:
    """A plate-like picture: dark text bars on white, or noise (hard to compress) when asked."""
    rng = np.random.default_rng(seed)
    if noise:
        img = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    else:
        img = np.full((height, width, 3), 235, np.uint8)
        for i in range(6):
            x = int(width * (0.1 + 0.13 * i))
            cv2.rectangle(img, (x, int(height * 0.3)), (x + max(1, width // 14), int(height * 0.7)), (20, 20, 20), -1)
        img[:, :, int(seed) % 3] //= 2
        ys, xs = rng.integers(0, height, 8), rng.integers(0, width, 8)
        img[ys, xs] = rng.integers(0, 256, (8, 3), dtype=np.uint8)  # a few dots: every seed its own JPEG
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return bytes(buf)


def make_crop(
    seq: int = 0,
    *,
    camera_id: str = "gate",
    region: Box = Box(400, 300, 600, 350),
    scale: float = 1.0,
    wall_time: float | None = None,
    mono_time: float | None = None,
    noise: bool = False,
    quality: int = 90,
) -> PlateCrop:
    """A crop of ``region`` whose JPEG is the region scaled by ``scale``."""
    w, h = max(1, round(region.width * scale)), max(1, round(region.height * scale))
    return PlateCrop(
        camera_id=camera_id,
        frame_seq=seq,
        wall_time=time.time() if wall_time is None else wall_time,
        mono_time=time.monotonic() if mono_time is None else mono_time,
        detection=Detection(region, 0.8),
        region=region,
        jpeg=jpeg_of(w, h, seed=seq, noise=noise, quality=quality),
        sharpness=10.0,
        quality=0.5,
    )


def reader_cfg(url: str, **kw: Any) -> ReaderConfig:
    """Short timeouts and backoffs so error paths take milliseconds, not minutes."""
    base: dict[str, Any] = dict(
        type="cloud",
        url=url,
        timeout_connect_s=1.0,
        timeout_read_s=1.0,
        rate_per_s=0.0,
        retries=2,
        backoff_initial_s=0.02,
        backoff_max_s=0.1,
        forbidden_backoff_s=60.0,
        usage_poll_s=0.0,
    )
    base.update(kw)
    return ReaderConfig(**base)


@pytest.fixture
def crop() -> PlateCrop:
    return make_crop()
