"""``plate-agent probe IMAGE...``: the detector (and the reader, when configured) on still images,
one JSON line per image, optionally the images with their boxes drawn — the tool to tune with.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from ..crop import Cropper
from ..errors import AgentError, ConfigError, DetectorError
from ..types import Detection, Frame, Image, PlateCrop, PlateRead

if TYPE_CHECKING:
    from ..config import Config
    from ..detect import PlateDetector

logger = logging.getLogger(__name__)

ReadFn = Callable[[PlateCrop], list[PlateRead]]
BOX_COLOUR = (0, 255, 0)  # BGR
TEXT_COLOUR = (0, 0, 0)


def probe_image(
    path: str | Path, detector: PlateDetector, cropper: Cropper, read: ReadFn | None = None
) -> tuple[dict[str, Any], Image | None]:
    """Detect (and read) the plates of one image file: a JSON-ready dict and the decoded image."""
    p = Path(path)
    loaded = cv2.imread(str(p), cv2.IMREAD_COLOR)
    if loaded is None:
        return {"image": str(p), "error": "not an image OpenCV can read"}, None
    image: Image = np.asarray(loaded, np.uint8)
    h, w = image.shape[:2]
    t0 = time.perf_counter()
    detections = detector.detect(image)
    ms = (time.perf_counter() - t0) * 1000
    frame = Frame("probe", image, 0, time.time(), time.monotonic())
    plates = [_probe_detection(frame, det, cropper, read) for det in detections]
    doc = {"image": str(p), "width": w, "height": h, "detect_ms": round(ms, 1), "plates": plates}
    return doc, image


def _probe_detection(frame: Frame, det: Detection, cropper: Cropper, read: ReadFn | None) -> dict[str, Any]:
    out: dict[str, Any] = {"box": det.box.as_dict(), "score": round(det.score, 4), "label": det.label}
    crop = cropper.crop(frame, det)
    crop = cropper.encode(crop) if crop is not None else None
    if crop is None:
        out["crop"] = None
        return out
    out["crop"] = {
        "region": crop.region.as_dict(),
        "bytes": len(crop.jpeg),
        "sharpness": round(crop.sharpness, 1),
        "quality": round(crop.quality, 4),
    }
    if read is not None:
        from ..read import read_to_dict

        try:
            out["reads"] = [read_to_dict(r) for r in read(crop)]
        except AgentError as err:  # one failed read must not end the probe
            out["read_error"] = str(err)
    return out


def annotate(image: Image, doc: dict[str, Any]) -> Image:
    """A copy of ``image`` with each plate's box, score and (when read) text drawn on it."""
    out = image.copy()
    thick = max(2, round(max(out.shape[:2]) / 500))
    for plate in doc.get("plates", []):
        b = plate["box"]
        cv2.rectangle(out, (b["xmin"], b["ymin"]), (b["xmax"], b["ymax"]), BOX_COLOUR, thick)
        reads = plate.get("reads") or []
        label = f"{plate['score']:.2f}" + (f" {reads[0]['plate']}" if reads and reads[0]["plate"] else "")
        scale = thick / 3
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
        y = max(th + base, b["ymin"] - thick)
        cv2.rectangle(out, (b["xmin"], y - th - base), (b["xmin"] + tw, y), BOX_COLOUR, -1)
        cv2.putText(out, label, (b["xmin"], y - base), cv2.FONT_HERSHEY_SIMPLEX, scale, TEXT_COLOUR, thick)
    return out


def run_probe(images: Sequence[str], cfg: Config, annotate: str | None = None, read: bool = True) -> int:
    """Probe each image, printing one JSON line each; 0 when all were read, 1 if any was not,
    2 when the detector or reader cannot be built."""
    from ..detect import create_detector

    reader: Any = None
    try:
        detector = create_detector(cfg.detector)
        if read and cfg.reader.type != "none":
            from ..read import READERS

            reader = READERS[cfg.reader.type](cfg.reader)
    except (DetectorError, ConfigError) as err:
        print(f"probe: {err}", file=sys.stderr)
        return 2
    out_dir = Path(annotate) if annotate else None
    status = 0
    try:
        cropper = Cropper(cfg.crop)
        for path in images:
            doc, image = probe_image(path, detector, cropper, reader.read if reader else None)
            print(json.dumps(doc), flush=True)
            if image is None:
                status = 1
            elif out_dir is not None:
                status = max(status, _write_annotated(out_dir, Path(path), _draw(image, doc)))
    finally:
        detector.close()
        if reader is not None:
            reader.close()
    return status


_draw = annotate  # run_probe's ``annotate`` argument shadows the function


def _write_annotated(out_dir: Path, src: Path, image: Image) -> int:
    target = out_dir / f"{src.stem}.jpg"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(target), image):
            raise OSError("cv2.imwrite failed")
    except OSError as err:
        print(f"probe: cannot write {target}: {err}", file=sys.stderr)
        return 1
    return 0
