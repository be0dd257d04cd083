"""What decoding costs, and what decoding only keyframes while nothing moves would save: CPU per
second of a camera-like 720p15 clip (idle_cpu.camera_clip: a still scene with sensor noise,
4 Mb/s) for GOPs of 1, 2 and 4 s, decoded by OpenCV (the agent's fallback backend), by PyAV in full
(with FFmpeg's default threads, 1 and 2), and by PyAV with FFmpeg's ``skip_frame = NONKEY`` (what
agent/sources/pyav.py does while idle, by not feeding non-key packets); and the wake delay it adds.

    .venv/bin/python -m tests.bench.keyframes [--seconds 20] [--json out.json]

Without PyAV (no wheel: 32-bit ARM) only the OpenCV rows are measured. CPU is the process's (all
threads, ``time.process_time``), decoding from a file as fast as it goes, one decoder after the
other; compare rows within one run (the machine may be loaded).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import cv2

from tests.bench.idle_cpu import camera_clip

GOPS_S = (1.0, 2.0, 4.0)


def opencv_full(path: Path) -> tuple[int, float]:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    n, c0 = 0, time.process_time()
    while True:
        ok, _ = cap.read()
        if not ok:
            break
        n += 1
    cap.release()
    return n, time.process_time() - c0


def pyav_decode(path: Path, *, keyframes_only: bool, threads: int = 0) -> tuple[int, float]:
    import av

    n, c0 = 0, time.process_time()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if threads:
            stream.thread_count = threads
        if keyframes_only:
            stream.codec_context.skip_frame = "NONKEY"
        for frame in container.decode(stream):
            frame.to_ndarray(format="bgr24")  # what the agent needs: a BGR frame
            n += 1
    return n, time.process_time() - c0


def measure(seconds: float, fps: int = 15) -> dict[str, Any]:
    try:
        import av

        have_av = av.__version__
    except ImportError:
        have_av = ""
    rows: dict[str, Any] = {"pyav": have_av or None, "clip_s": seconds, "gops": {}}
    for gop in GOPS_S:
        path = camera_clip(seconds, 1280, 720, fps, gop)
        r: dict[str, Any] = {}
        n, cpu = opencv_full(path)
        r["opencv"] = {"frames": n, "cpu_s": round(cpu, 3), "pct_of_core": round(100 * cpu / seconds, 1)}
        if have_av:
            for name, kw in (("pyav_full", {"keyframes_only": False}),
                             ("pyav_full_1_thread", {"keyframes_only": False, "threads": 1}),
                             ("pyav_full_2_threads", {"keyframes_only": False, "threads": 2}),
                             ("pyav_keyframes", {"keyframes_only": True})):
                n, cpu = pyav_decode(path, **kw)  # type: ignore[arg-type]
                r[name] = {"frames": n, "cpu_s": round(cpu, 3), "pct_of_core": round(100 * cpu / seconds, 1)}
            full = r["pyav_full"]
            key = r["pyav_keyframes"]
            r["keyframes_vs_opencv"] = round(key["cpu_s"] / r["opencv"]["cpu_s"], 3)
            # waking on a keyframe: a car is first seen at the next keyframe (mean GOP/2, worst GOP);
            # then the frames since that keyframe are decoded to catch up with the stream
            per_frame_ms = 1000 * full["cpu_s"] / max(1, full["frames"])
            r["wake"] = {"mean_s": gop / 2, "worst_s": gop, "catch_up_ms_worst": round(per_frame_ms * gop * fps, 1)}
        rows["gops"][f"{gop:g}"] = r
        print(f"GOP {gop:g} s: " + json.dumps(r), file=sys.stderr, flush=True)
    return rows


def table(doc: dict[str, Any]) -> str:
    lines = ["| GOP | OpenCV full | PyAV full | PyAV full, 1 thread | PyAV full, 2 threads | PyAV keyframes only | "
             "keyframes ÷ OpenCV | wake delay mean / worst |", "|---|---|---|---|---|---|---|---|"]
    def cell(r: dict[str, Any], k: str) -> str:
        return f"{r[k]['pct_of_core']}% ({r[k]['frames']} frames)" if k in r else "–"

    for gop, r in doc["gops"].items():
        wake = r.get("wake")
        delay = f"{wake['mean_s']:g} / {wake['worst_s']:g} s" if wake else "–"
        lines.append(f"| {gop} s | {cell(r, 'opencv')} | {cell(r, 'pyav_full')} | {cell(r, 'pyav_full_1_thread')} | "
                     f"{cell(r, 'pyav_full_2_threads')} | "
                     f"{cell(r, 'pyav_keyframes')} | {r.get('keyframes_vs_opencv', '–')} | {delay} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0, help="clip length")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args(argv)
    load = os.getloadavg()[0]
    doc = measure(args.seconds)
    doc["load"] = [round(load, 2), round(os.getloadavg()[0], 2)]
    print(table(doc))
    print(f"\n{args.seconds:g} s clips, 1280x720@15, 4 Mb/s; load {doc['load'][0]} → {doc['load'][1]}")
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
