"""TFLite detector backend: LiteRT (ai-edge-litert) or tflite-runtime, YOLO or SSD heads.

The model's input size, layout, dtype and quantisation are read from the model itself. The
runtime is imported when a detector is built, never when this module is imported.
"""

from __future__ import annotations

import copy
import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import numpy.typing as npt

from ..errors import DetectorError
from ..types import Box, Detection, Image
from .bundled import model_path
from .decode import (
    FloatArray,
    Letterbox,
    Raw,
    decode_ssd,
    decode_yolo,
    dequantize,
    nms,
    yolo_layout,
)

if TYPE_CHECKING:
    from ..config import DetectorConfig

logger = logging.getLogger(__name__)

RUNTIMES = ("ai_edge_litert.interpreter", "tflite_runtime.interpreter")
ROI_PAD_FRACTION = 0.1  # widen the motion region so a plate on its edge is not cut
# Largest scale (model px per frame px) a motion region is shown at. The bundled model was trained
# on whole scenes and loses plates shown much larger than that: on 1280 px development frames
# (whole-frame scale 0.4) scale 0.5 kept recall, 1:1 cost 2.7 points. On a 4K camera (whole-frame
# scale 0.13) the region still gets ~4x the pixels.
ROI_SCALE_MAX = 0.5
PAD_VALUE = 114  # letterbox grey, as the YOLO models were trained with
# A box covering most of the image is the model reading the letterbox bands around a featureless
# frame as one huge plate (seen on uniform grey frames); a real plate cannot, even in a close-up.
MAX_PLATE_AREA_FRACTION = 0.6


def load_interpreter_class() -> Any:
    """The ``Interpreter`` class of the first importable runtime (LiteRT preferred: it is ~10x
    faster than tflite-runtime 2.14 on the same model)."""
    import importlib

    for name in RUNTIMES:
        try:
            return importlib.import_module(name).Interpreter
        except ImportError:
            continue
    raise DetectorError(
        "no TFLite runtime: install ai-edge-litert (pip install ai-edge-litert), "
        "or tflite-runtime on 32-bit ARM (pip install tflite-runtime)"
    )


@dataclass(frozen=True, slots=True)
class _Input:
    index: int
    width: int
    height: int
    nchw: bool
    dtype: Any
    scale: float
    zero_point: int


def _input_spec(detail: dict[str, Any]) -> _Input:
    shape = tuple(int(x) for x in detail["shape"])
    if len(shape) != 4 or 3 not in (shape[1], shape[3]):
        raise DetectorError(f"model input shape {list(shape)}: expected [1, H, W, 3] or [1, 3, H, W]")
    nchw = shape[1] == 3 and shape[3] != 3
    h, w = (shape[2], shape[3]) if nchw else (shape[1], shape[2])
    scale, zp = detail.get("quantization", (0.0, 0))
    return _Input(int(detail["index"]), w, h, nchw, detail["dtype"], float(scale), int(zp))


def _head_kind(outputs: list[dict[str, Any]]) -> str:
    shapes = [tuple(int(x) for x in d["shape"]) for d in outputs]
    if len(shapes) == 1 and yolo_layout(shapes[0]) is not None:
        return "yolo"
    if len(shapes) in (3, 4) and any(len(s) == 3 and s[-1] == 4 for s in shapes):
        return "ssd"
    raise DetectorError(
        f"model output shapes {[list(s) for s in shapes]}: expected one YOLO output "
        "[1, 4+C, N] or [1, N, 4+C], or SSD outputs (boxes [1, N, 4], classes, scores, count)"
    )


class TFLiteDetector:
    """A TFLite plate detector built from the ``[detector]`` config section."""

    def __init__(self, cfg: DetectorConfig, interpreter_class: Any = None) -> None:
        self.cfg = cfg
        self.path = model_path(cfg)
        if not self.path.is_file():
            raise DetectorError(f"detector.model_path: model file not found: {self.path}")
        cls = interpreter_class or load_interpreter_class()
        try:
            self._interp: Any = cls(model_path=str(self.path), num_threads=cfg.num_threads)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError, OSError) as err:
            raise DetectorError(f"detector.model_path: cannot load {self.path}: {err}") from err
        inputs = self._interp.get_input_details()
        if len(inputs) != 1:
            raise DetectorError(f"model has {len(inputs)} inputs, expected 1 image input")
        self.input = _input_spec(inputs[0])
        self._outputs: list[dict[str, Any]] = self._interp.get_output_details()
        self.kind = _head_kind(self._outputs)
        # YOLO models take 0..1 RGB; SSD (TF object detection API) float models take -1..1
        self._norm = (1 / 255.0, 0.0) if self.kind == "yolo" else (1 / 127.5, -1.0)
        self._closed = False
        logger.info(
            "detector loaded path=%s kind=%s input=%dx%d dtype=%s threads=%d",
            self.path, self.kind, self.input.width, self.input.height,
            np.dtype(self.input.dtype).name, cfg.num_threads,
        )

    # ------------------------------------------------------------ public

    def detect(self, image: Image, roi: Box | None = None) -> list[Detection]:
        """Plates in ``image``, best first. ``roi`` (motion region) is used when it is small."""
        if self._closed:
            raise DetectorError("detector is closed")
        if image.ndim == 2:
            image = _u8(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR))
        frame_h, frame_w = image.shape[:2]
        region = self.region_for(frame_w, frame_h, roi)
        src = image if region is None else region.pixels(image)
        origin = (0, 0) if region is None else (region.x1, region.y1)
        tensor, geom = self.preprocess(src, origin)
        raw = self._run(tensor)
        return self._finish(raw, geom)

    def for_camera(self, cfg: DetectorConfig) -> TFLiteDetector:
        """This loaded model with a camera's own settings (score, plate width, roi); not thread-safe
        against this detector or its other views: ``SharedDetectors`` gives them turns."""
        view = copy.copy(self)
        view.cfg = cfg
        return view

    def close(self) -> None:
        self._closed = True
        self._interp = None

    # ------------------------------------------------------------ steps

    def region_for(self, frame_w: int, frame_h: int, roi: Box | None) -> Box | None:
        """The part of the frame to run on: the padded motion region, grown so the model sees it
        at no more than ROI_SCALE_MAX; None for the whole frame (also when that is no smaller)."""
        if roi is None or not self.cfg.roi:
            return None
        seen = roi.clamp(frame_w, frame_h)
        if seen.area == 0 or seen.area > self.cfg.roi_max_fraction * frame_w * frame_h:
            return None
        x1, y1, x2, y2 = seen.x1, seen.y1, seen.x2, seen.y2
        pad_x, pad_y = round((x2 - x1) * ROI_PAD_FRACTION), round((y2 - y1) * ROI_PAD_FRACTION)
        w = min(frame_w, max(x2 - x1 + 2 * pad_x, math.ceil(self.input.width / ROI_SCALE_MAX)))
        h = min(frame_h, max(y2 - y1 + 2 * pad_y, math.ceil(self.input.height / ROI_SCALE_MAX)))
        left = min(max(0, (x1 + x2 - w) // 2), frame_w - w)
        top = min(max(0, (y1 + y2 - h) // 2), frame_h - h)
        if w * h >= frame_w * frame_h:
            return None
        return Box(left, top, left + w, top + h)

    def preprocess(self, src: Image, origin: tuple[int, int] = (0, 0)) -> tuple[npt.NDArray[Any], Letterbox]:
        """BGR region -> model input tensor (letterboxed RGB) and the geometry to map back."""
        inp = self.input
        geom = Letterbox.fit(src.shape[1], src.shape[0], inp.width, inp.height, origin)
        new_w, new_h = geom.resized
        resized = _resize(src, new_w, new_h)
        canvas = np.full((inp.height, inp.width, 3), PAD_VALUE, np.uint8)
        px, py = int(geom.pad_x), int(geom.pad_y)
        canvas[py : py + new_h, px : px + new_w] = resized
        rgb = _u8(cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB))
        tensor = self._to_input_dtype(rgb)
        if inp.nchw:
            tensor = tensor.transpose(2, 0, 1)
        return tensor[np.newaxis], geom

    def _to_input_dtype(self, rgb: npt.NDArray[np.uint8]) -> npt.NDArray[Any]:
        inp = self.input
        if np.issubdtype(inp.dtype, np.floating):
            mul, add = self._norm
            return (rgb.astype(np.float32) * mul + add).astype(inp.dtype)
        if inp.scale:  # quantised integer input: quantise the normalised values
            mul, add = self._norm
            real = rgb.astype(np.float32) * mul + add
            info = np.iinfo(inp.dtype)
            q = np.round(real / inp.scale + inp.zero_point)
            return np.clip(q, info.min, info.max).astype(inp.dtype)
        return rgb.astype(inp.dtype)

    def _run(self, tensor: npt.NDArray[Any]) -> Raw:
        try:
            self._interp.set_tensor(self.input.index, tensor)
            self._interp.invoke()
            outs = [
                dequantize(self._interp.get_tensor(d["index"]), *d.get("quantization", (0.0, 0)))
                for d in self._outputs
            ]
        except (ValueError, RuntimeError) as err:
            raise DetectorError(f"inference failed: {err}") from err
        w, h, score_min = self.input.width, self.input.height, self.cfg.score_min
        if self.kind == "yolo":
            return decode_yolo(outs[0], w, h, score_min)
        return decode_ssd(*_ssd_parts(outs, self._outputs), w, h, score_min)

    def _finish(self, raw: Raw, geom: Letterbox) -> list[Detection]:
        if not len(raw):
            return []
        raw = raw.take(nms(raw.boxes, raw.scores, self.cfg.iou_nms))
        boxes = geom.to_frame(raw.boxes)
        labels_single = int(raw.classes.max(initial=0)) == 0
        found: list[Detection] = []
        for (x1, y1, x2, y2), score, cls in zip(boxes, raw.scores, raw.classes):
            box = Box(int(round(x1)), int(round(y1)), int(round(x2)), int(round(y2)))
            if box.width < self.cfg.min_plate_width_px or box.height <= 0:
                continue
            if box.area > MAX_PLATE_AREA_FRACTION * geom.src_w * geom.src_h:
                continue
            label = "plate" if labels_single else f"class{int(cls)}"
            found.append(Detection(box, float(score), label))
        return found


def _resize(src: Image, width: int, height: int) -> Image:
    """Area-averaging resize that stays cheap. Bilinear on a 2.5x shrink cost 2 points of recall
    on small plates; cv2.INTER_AREA keeps it but takes ~9 ms at non-integer ratios. So: shrink by
    the whole factor k with INTER_AREA's fast integer path (after padding the edge to a multiple
    of k), then bilinear for the remaining < 2x."""
    h, w = src.shape[:2]
    k = min(w // width, h // height)
    img = src
    if k >= 2:
        pad_w, pad_h = -w % k, -h % k
        if pad_w or pad_h:
            img = _u8(cv2.copyMakeBorder(img, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE))
        img = _u8(cv2.resize(img, ((w + pad_w) // k, (h + pad_h) // k), interpolation=cv2.INTER_AREA))
    if img.shape[1] == width and img.shape[0] == height:
        return img
    # the < k px of edge padding shifts the scale by under one model pixel across the image
    return _u8(cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR))


def _u8(arr: Any) -> Image:
    """OpenCV results typed as the uint8 images they are (no copy)."""
    return np.asarray(arr, dtype=np.uint8)


def _ssd_parts(
    outs: list[FloatArray], details: list[dict[str, Any]]
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray | None]:
    """Pick boxes/classes/scores/count out of SSD outputs by shape, then by name or values."""
    boxes = next(o for o in outs if o.ndim == 3 and o.shape[-1] == 4)
    count = next((o for o in outs if o.size == 1), None)
    rest = [(o, str(d.get("name", "")).lower()) for o, d in zip(outs, details)
            if o is not boxes and o is not count]
    if len(rest) != 2:
        raise DetectorError(f"SSD model: cannot tell classes from scores in {len(rest)} outputs")
    (a, name_a), (b, name_b) = rest
    if "score" in name_a or "class" in name_b:
        return boxes, b, a, count
    if "score" in name_b or "class" in name_a:
        return boxes, a, b, count
    # unnamed: class ids are whole numbers, scores are not (TFLite_Detection_PostProcess order)
    if np.any(a != np.round(a)) and not np.any(b != np.round(b)):
        return boxes, b, a, count
    return boxes, a, b, count

