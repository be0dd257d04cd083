"""Pure-numpy decoding of detector outputs: YOLO and SSD layouts, NMS, letterbox geometry.

Everything here works on arrays of boxes ``[N, 4]`` as (x1, y1, x2, y2) floats so it can be
unit-tested without a model or a runtime.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Raw:
    """Decoded candidates before NMS: boxes in model-input pixels, scores and class ids."""

    boxes: FloatArray  # [N, 4] x1, y1, x2, y2
    scores: FloatArray  # [N]
    classes: npt.NDArray[np.int64]  # [N]

    @staticmethod
    def empty() -> Raw:
        return Raw(
            np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int64)
        )

    def take(self, idx: npt.NDArray[np.int64] | npt.NDArray[np.bool_]) -> Raw:
        return Raw(self.boxes[idx], self.scores[idx], self.classes[idx])

    def __len__(self) -> int:
        return int(self.scores.shape[0])


@dataclass(frozen=True, slots=True)
class Letterbox:
    """How a source region was scaled and padded into the model input."""

    scale: float  # model pixels per source pixel
    pad_x: float  # left padding in model pixels
    pad_y: float  # top padding in model pixels
    src_w: int  # size of the source region in source pixels
    src_h: int
    origin_x: int = 0  # where the source region starts in the frame (ROI mode)
    origin_y: int = 0

    @staticmethod
    def fit(src_w: int, src_h: int, dst_w: int, dst_h: int, origin: tuple[int, int] = (0, 0)) -> Letterbox:
        """Geometry that fits ``src`` inside ``dst`` keeping the aspect ratio, centred."""
        scale = min(dst_w / src_w, dst_h / src_h)
        new_w, new_h = round(src_w * scale), round(src_h * scale)
        return Letterbox(
            scale, (dst_w - new_w) // 2, (dst_h - new_h) // 2, src_w, src_h, origin[0], origin[1]
        )

    @property
    def resized(self) -> tuple[int, int]:
        """(width, height) of the source after scaling."""
        return round(self.src_w * self.scale), round(self.src_h * self.scale)

    def to_frame(self, boxes: FloatArray) -> FloatArray:
        """Model-input pixel boxes -> frame pixel boxes, clipped to the source region."""
        out = np.empty_like(boxes, dtype=np.float32)
        out[:, [0, 2]] = (boxes[:, [0, 2]] - self.pad_x) / self.scale
        out[:, [1, 3]] = (boxes[:, [1, 3]] - self.pad_y) / self.scale
        out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, self.src_w) + self.origin_x
        out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, self.src_h) + self.origin_y
        return out

    def to_model(self, boxes: FloatArray) -> FloatArray:
        """Frame pixel boxes -> model-input pixel boxes (the inverse of ``to_frame``)."""
        out = np.empty_like(boxes, dtype=np.float32)
        out[:, [0, 2]] = (boxes[:, [0, 2]] - self.origin_x) * self.scale + self.pad_x
        out[:, [1, 3]] = (boxes[:, [1, 3]] - self.origin_y) * self.scale + self.pad_y
        return out


def dequantize(arr: npt.NDArray[np.generic], scale: float, zero_point: int) -> FloatArray:
    """Integer tensor -> float with the tensor's (scale, zero_point); floats pass through."""
    if np.issubdtype(arr.dtype, np.integer) and scale:
        return ((arr.astype(np.float32) - zero_point) * scale).astype(np.float32)
    return arr.astype(np.float32, copy=False)


def yolo_layout(shape: tuple[int, ...]) -> str | None:
    """"channels_first" for ``[1, 4+C, N]``, "channels_last" for ``[1, N, 4+C]``, else None.

    The anchor count N is always far larger than 4+C for a detector head, which tells them apart.
    """
    if len(shape) != 3 or shape[0] != 1:
        return None
    a, b = shape[1], shape[2]
    if a >= 5 and b > a:
        return "channels_first"
    if b >= 5 and a > b:
        return "channels_last"
    return None


def decode_yolo(
    out: FloatArray, input_w: int, input_h: int, score_min: float, normalized: bool | None = None
) -> Raw:
    """YOLOv8-style head (cx, cy, w, h, class scores...) -> candidates in model-input pixels.

    ``normalized``: boxes are 0..1 of the input size (Ultralytics' own TFLite export) rather
    than pixels (ONNX -> TFLite conversions); None guesses from the values.
    """
    layout = yolo_layout(tuple(out.shape))
    if layout is None:
        raise ValueError(f"not a YOLO output shape: {tuple(out.shape)}")
    pred = out[0].T if layout == "channels_first" else out[0]  # [N, 4+C]
    cls_scores = pred[:, 4:]
    classes = np.argmax(cls_scores, axis=1)
    scores = cls_scores[np.arange(pred.shape[0]), classes]
    keep = scores >= score_min
    if not np.any(keep):
        return Raw.empty()
    xywh = pred[keep, :4].astype(np.float32)
    if normalized is None:
        # pixel boxes of any real detection exceed 2; normalised ones never do
        normalized = float(np.max(np.abs(xywh))) <= 2.0
    if normalized:
        xywh = xywh * np.array([input_w, input_h, input_w, input_h], np.float32)
    boxes = np.empty_like(xywh)
    boxes[:, 0] = xywh[:, 0] - xywh[:, 2] / 2
    boxes[:, 1] = xywh[:, 1] - xywh[:, 3] / 2
    boxes[:, 2] = xywh[:, 0] + xywh[:, 2] / 2
    boxes[:, 3] = xywh[:, 1] + xywh[:, 3] / 2
    return Raw(boxes, scores[keep].astype(np.float32), classes[keep].astype(np.int64))


def decode_ssd(
    boxes: FloatArray,
    classes: FloatArray,
    scores: FloatArray,
    count: FloatArray | None,
    input_w: int,
    input_h: int,
    score_min: float,
) -> Raw:
    """TFLite_Detection_PostProcess outputs (normalised ymin, xmin, ymax, xmax) -> candidates."""
    b = boxes.reshape(-1, 4).astype(np.float32)
    s = scores.reshape(-1).astype(np.float32)
    c = classes.reshape(-1).astype(np.int64)
    n = min(len(b), len(s), len(c))
    if count is not None:
        n = min(n, int(np.asarray(count).reshape(-1)[0]))
    b, s, c = b[:n], s[:n], c[:n]
    keep = s >= score_min
    px = np.empty((int(keep.sum()), 4), np.float32)
    px[:, 0] = b[keep, 1] * input_w
    px[:, 1] = b[keep, 0] * input_h
    px[:, 2] = b[keep, 3] * input_w
    px[:, 3] = b[keep, 2] * input_h
    return Raw(px, s[keep], c[keep])


def nms(boxes: FloatArray, scores: FloatArray, iou_max: float) -> npt.NDArray[np.int64]:
    """Greedy non-maximum suppression; indices of kept boxes, best score first."""
    if len(boxes) == 0:
        return np.zeros((0,), np.int64)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = np.maximum(0.0, x2 - x1) * np.maximum(0.0, y2 - y1)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        iw = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        ih = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = iw * ih
        union = areas[i] + areas[rest] - inter
        iou = np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)
        order = rest[iou <= iou_max]
    return np.asarray(keep, np.int64)
