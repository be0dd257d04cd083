"""``plate-agent demo``: the real pipeline on a clip the agent draws itself.

Two cars drive up to a gate, stop and leave. Events are printed as JSON lines on stdout and the
crops are written to ``<out>/crops``. Plates are read through the cloud when PLATE_RECOGNIZER_TOKEN
is set; otherwise events carry the on-device detection only.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .. import config, environ
from ..events import JsonLinesSink
from .scene import SceneSpec, write_clip

DEMO_PLATES = ("KX52 ODV", "AB12 CDE")


def demo_config(out: Path, clip: Path, reader: str) -> config.Config:
    return config.parse(
        {
            "cameras": [
                {
                    "id": "demo",
                    "source": str(clip),
                    "type": "file",
                    "realtime": True,  # pass timing (gaps between cars) is real time
                    "fps_max": 15.0,
                }
            ],
            "crop": {"save_dir": str(out / "crops")},
            "reader": {"type": reader},
            "storage": {"state_dir": str(out / "state")},
            "status": {"enabled": False},
            "log_level": "warning",
        }
    )


def run_demo(out: Path) -> int:
    from ..service import run_service

    out.mkdir(parents=True, exist_ok=True)
    clip = out / "demo.mp4"
    print(f"demo: drawing a {len(DEMO_PLATES)}-car clip into {clip}", file=sys.stderr)
    write_clip(SceneSpec(plates=DEMO_PLATES, clock_overlay=True, noise_sigma=2.0), clip)
    if environ.secret("PLATE_RECOGNIZER_TOKEN"):
        reader = "cloud"
        print("demo: PLATE_RECOGNIZER_TOKEN is set: plates are read by the Plate Recognizer cloud "
              "(each crop sent is billed)", file=sys.stderr)
    else:
        reader = "none"
        print("demo: PLATE_RECOGNIZER_TOKEN is not set: no plate is read, events carry the on-device "
              "detection only (set it to read the text)", file=sys.stderr)
    cfg = demo_config(out, clip, reader)
    code = run_service(cfg, extra_sinks=[JsonLinesSink()], stop_when_sources_end=True)
    crops = sorted((out / "crops").glob("*.jpg")) if (out / "crops").is_dir() else []
    print(f"demo: {len(crops)} crop(s) written to {out / 'crops'}", file=sys.stderr)
    return code
