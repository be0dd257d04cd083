"""The benchmark scene as an H.264 MP4 (agent/tools/scene.py frames piped through GStreamer's x264enc),
cached by its spec, with its ground truth; and the RTSP server's frame log read back as times.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import itertools
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import cv2

from agent.tools import scene, scene_looks
from agent.plates import canonical, distance
from agent.tools.scene import SceneSpec, VehicleTruth, render
from agent.types import Image

CACHE = Path(os.environ.get("PLATE_AGENT_BENCH_CACHE", Path(tempfile.gettempdir()) / "plate-agent-bench"))
BITRATE_KBPS = 4000  # 720p with sensor noise: enough that the plates stay sharp


def spec_key(spec: SceneSpec) -> str:
    """Changes with the spec, the encoder settings and the drawing code."""
    doc = json.dumps(dataclasses.asdict(spec), sort_keys=True, default=list)
    drawing = Path(scene.__file__).read_bytes() + Path(scene_looks.__file__).read_bytes()
    return hashlib.sha256(f"{doc}|{BITRATE_KBPS}|".encode() + drawing).hexdigest()[:16]


def encode_h264(spec: SceneSpec, path: Path, on_frame: Callable[[int, Image], None] | None = None,
                on_truths: Callable[[list[VehicleTruth]], None] | None = None) -> list[VehicleTruth]:
    """Render ``spec`` into ``path`` (H.264 MP4, one keyframe a second); returns the ground truth.
    ``on_truths`` sees the ground truth before the first frame, ``on_frame`` every frame drawn."""
    gst = shutil.which("gst-launch-1.0")
    if gst is None:
        raise RuntimeError("gst-launch-1.0 not found (apt: gstreamer1.0-tools)")
    frames, truths, _ = render(spec)
    if on_truths is not None:
        on_truths(truths)
    fps = round(spec.fps)
    pipeline = (
        f"fdsrc fd=0 blocksize={spec.width * spec.height * 3} "
        f"! rawvideoparse width={spec.width} height={spec.height} format=bgr framerate={fps}/1 "
        f"! videoconvert ! video/x-raw,format=I420 "
        f"! x264enc speed-preset=veryfast bframes=0 key-int-max={fps} bitrate={BITRATE_KBPS} "
        f"! h264parse ! mp4mux ! filesink location={path}"
    )
    proc = subprocess.Popen([gst, "-q", *pipeline.split()], stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None
    try:
        for i, img in enumerate(frames):
            if on_frame is not None:
                on_frame(i, img)
            proc.stdin.write(img.tobytes())
    finally:
        proc.stdin.close()
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        proc.wait()
    if proc.returncode != 0 or not path.exists():
        raise RuntimeError(f"encoding the scene failed ({proc.returncode}): {err[-500:]}")
    return truths


def real_plates(n: int, data: Path, min_width_px: int = 100, min_distance: int = 4) -> list[tuple[str, str]]:
    """(text, picture file) for ``n`` annotated plates cut from ``data`` (../shared/data/plates) into the
    cache, never into the repository: wide enough to be sharp at the stop line, and texts at least
    ``min_distance`` edits apart so no two vehicles merge into one pass. [] when there are too few."""
    by_region: dict[str, list[dict[str, str]]] = {}
    for r in sorted(csv.DictReader((data / "annotations.csv").open()), key=lambda r: r["file"]):
        by_region.setdefault(r["region"], []).append(r)
    # every region in turn, so the scene mixes plate styles (us, eu, br)
    rows = [r for group in itertools.zip_longest(*by_region.values()) for r in group if r is not None]
    out_dir = CACHE / "plates"
    out_dir.mkdir(parents=True, exist_ok=True)
    picked: list[tuple[str, str]] = []
    for r in rows:
        x1, y1, x2, y2 = (int(r[k]) for k in ("xmin", "ymin", "xmax", "ymax"))
        text = canonical(r["plate_text"])
        if x2 - x1 < min_width_px or not 1.8 <= (x2 - x1) / max(1, y2 - y1) <= 5.5 or len(text) < 5:
            continue
        if any(distance(text, canonical(t), min_distance) < min_distance for t, _ in picked):
            continue
        path = out_dir / f"{r['region']}-{Path(r['file']).stem}.png"
        if not path.exists():
            img = cv2.imread(str(data / r["file"]), cv2.IMREAD_COLOR)
            if img is None:
                continue
            cv2.imwrite(str(path), img[y1:y2, x1:x2])
        picked.append((r["plate_text"], str(path)))
        if len(picked) == n:
            return picked
    return []


def scene_clip(spec: SceneSpec) -> tuple[Path, list[VehicleTruth]]:
    """The clip for ``spec`` from the cache, rendered first when missing."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"scene-{spec_key(spec)}.mp4"
    truth_path = path.with_suffix(".json")
    if path.exists() and truth_path.exists():
        doc = json.loads(truth_path.read_text())
        return path, [VehicleTruth(**v) for v in doc["vehicles"]]
    tmp = path.with_suffix(".part.mp4")
    truths = encode_h264(spec, tmp)
    truth_path.write_text(json.dumps({"spec": dataclasses.asdict(spec),
                                      "vehicles": [dataclasses.asdict(v) for v in truths]}, indent=1))
    tmp.rename(path)
    return path, truths


class FrameLog:
    """``<index> <wall time>`` lines written by tests/rtsp_server.py --frame-log."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sent: dict[int, float] = {}
        self.eos: float | None = None
        self.repeats = 0  # frames sent twice (a rewind): should stay 0

    def load(self) -> FrameLog:
        self.sent.clear()
        self.eos = None
        self.repeats = 0
        if not self.path.exists():
            return self
        for line in self.path.read_text().splitlines():
            a, _, b = line.partition(" ")
            if a == "EOS":
                self.eos = self.eos or float(b)
            elif a and b and self.eos is None:  # a replay after EOS is not this run
                self.repeats += int(a) in self.sent
                self.sent.setdefault(int(a), float(b))
        return self

    def frame_at(self, wall: float) -> int | None:
        """The newest frame sent at or before ``wall`` (None before the first)."""
        best = None
        for idx, t in self.sent.items():
            if t <= wall and (best is None or t > self.sent[best]):
                best = idx
        return best

    def ended(self) -> bool:
        return self.load().eos is not None
