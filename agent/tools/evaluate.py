"""Detector evaluation on an annotated image folder: recall at IoU 0.3/0.5, false boxes per image
and time per inference, overall and per region (``plate-agent eval-detector --data DIR``).

``annotations.csv`` columns used: file (relative to the folder), xmin, ymin, xmax, ymax, region.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from ..detect.bundled import model_path
from ..errors import DetectorError
from ..types import Box, Detection, Image

if TYPE_CHECKING:
    from ..config import Config

logger = logging.getLogger(__name__)

IOUS = (0.3, 0.5)
FALSE_IOU = 0.3  # a detection overlapping no plate by this much counts as a false box


@dataclass
class _Tally:
    images: int = 0
    plates: int = 0
    hits: dict[float, int] = field(default_factory=lambda: dict.fromkeys(IOUS, 0))
    false_boxes: int = 0
    ms: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"images": self.images, "plates": self.plates}
        for t in IOUS:
            out[f"recall@{t}"] = round(self.hits[t] / self.plates, 4) if self.plates else None
        out["false_per_image"] = round(self.false_boxes / self.images, 4) if self.images else None
        ms = np.asarray(self.ms) if self.ms else np.zeros(1)
        out["ms_p50"] = round(float(np.percentile(ms, 50)), 1)
        out["ms_p95"] = round(float(np.percentile(ms, 95)), 1)
        return out


def read_annotations(data_dir: Path) -> dict[str, tuple[str, list[Box]]]:
    """file -> (region, plate boxes) from ``annotations.csv``."""
    path = data_dir / "annotations.csv"
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as err:
        raise FileNotFoundError(f"{path}: cannot read: {err.strerror or err}") from err
    images: dict[str, tuple[str, list[Box]]] = {}
    for row in rows:
        box = Box(int(row["xmin"]), int(row["ymin"]), int(row["xmax"]), int(row["ymax"]))
        region = row.get("region") or "all"
        images.setdefault(row["file"], (region, []))[1].append(box)
    return images


def match(dets: list[Detection], truth: list[Box], iou_min: float) -> int:
    """How many true boxes a detection covers at ``iou_min`` (one-to-one, best score first)."""
    free = list(truth)
    hits = 0
    for det in sorted(dets, key=lambda d: -d.score):
        best = max(free, key=det.box.iou, default=None)
        if best is not None and det.box.iou(best) >= iou_min:
            free.remove(best)
            hits += 1
    return hits


def eval_detector(
    data_dir: str | Path,
    detect: Callable[[Image], list[Detection]],
    limit: int = 0,
    warmup: int = 2,
) -> dict[str, Any]:
    """Run ``detect`` on every annotated image; return overall and per-region metrics.

    ``detect`` is a detector's bound ``detect`` method (or any callable with that shape).
    Only the call itself is timed, not JPEG decoding.
    """
    data = Path(data_dir)
    images = read_annotations(data)
    items = sorted(images.items())[: limit or None]
    overall, regions = _Tally(), defaultdict[str, _Tally](_Tally)
    for i, (name, (region, truth)) in enumerate(items):
        loaded = cv2.imread(str(data / name), cv2.IMREAD_COLOR)
        if loaded is None:
            logger.warning("unreadable image file=%s", name)
            continue
        img: Image = np.asarray(loaded, np.uint8)
        if i < warmup:  # first calls pay one-off allocation costs
            detect(img)
        t0 = time.perf_counter()
        dets = detect(img)
        ms = (time.perf_counter() - t0) * 1000
        false_boxes = sum(1 for d in dets if max((d.box.iou(t) for t in truth), default=0) < FALSE_IOU)
        for tally in (overall, regions[region]):
            tally.images += 1
            tally.plates += len(truth)
            for t in IOUS:
                tally.hits[t] += match(dets, truth, t)
            tally.false_boxes += false_boxes
            tally.ms.append(ms)
    return {
        "data": str(data),
        "overall": overall.as_dict(),
        "regions": {r: regions[r].as_dict() for r in sorted(regions)},
    }


def format_table(result: dict[str, Any]) -> str:
    """The result as a Markdown table (the one in models/README.md)."""
    head = "| set | images | recall@0.3 | recall@0.5 | false boxes/img | ms p50 | ms p95 |"
    lines = [head, "|" + "---|" * 7]
    groups = [("all", result["overall"])] + list(result["regions"].items())
    for name, g in groups:
        lines.append(
            f"| {name} | {g['images']} | {_pct(g['recall@0.3'])} | {_pct(g['recall@0.5'])} "
            f"| {g['false_per_image']:.3f} | {g['ms_p50']:.1f} | {g['ms_p95']:.1f} |"
        )
    return "\n".join(lines)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


# ---------------------------------------------------------------- CLI


def run_eval(args: argparse.Namespace, cfg: Config) -> int:
    """``plate-agent eval-detector --data DIR [--json FILE]`` with the config's [detector]."""
    from ..detect import create_detector

    try:
        detector = create_detector(cfg.detector)
    except DetectorError as err:
        print(f"eval-detector: {err}", file=sys.stderr)
        return 2
    try:
        result = eval_detector(args.data, detector.detect)
    except FileNotFoundError as err:
        print(f"eval-detector: {err}", file=sys.stderr)
        return 2
    finally:
        detector.close()
    result["detector"] = {
        "model": str(model_path(cfg.detector)),
        "score_min": cfg.detector.score_min,
        "num_threads": cfg.detector.num_threads,
    }
    print(f"model: {result['detector']['model']}  threads: {cfg.detector.num_threads}"
          f"  score_min: {cfg.detector.score_min}")
    print(format_table(result))
    if getattr(args, "json", None):
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0
