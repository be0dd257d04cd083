"""Stage 4: a detection in a frame -> the JPEG sent to the reader, with a quality score that ranks
the frames of one vehicle pass (sharper and larger plates first).

``mode = "plate"`` sends the padded plate; ``"vehicle"`` a region several plate-widths wide around
it, which gives the cloud reader context (vehicle type, make, its own plate detection).
"""

from __future__ import annotations

import dataclasses

import logging

import cv2
import numpy as np

from .config import CropConfig
from .errors import AgentError
from .types import Box, Detection, Frame, Image, PlateCrop

logger = logging.getLogger(__name__)

# vehicle mode: the region around a plate of width w (plates sit low and central on a vehicle)
VEHICLE_HALF_WIDTH_PLATES = 2.5  # 5 plate widths across: a car front at EU plate size
VEHICLE_ABOVE_PLATES = 2.0  # bonnet, grille, windscreen
VEHICLE_BELOW_PLATES = 0.5
# quality: each term saturates so that a bigger or sharper crop stops helping once it is readable
FULL_SIZE_PLATE_PX = 160  # plate width where size stops mattering for a reader
SHARPNESS_HALF = 300.0  # variance of the Laplacian where the sharpness term is 0.5: sharp plates
# measured 600-10000 on the development images, the same blurred by sigma 1.5 px 30-170
MIN_JPEG_QUALITY = 50
SCALE_STEP = 0.75


def crop_region(box: Box, frame_w: int, frame_h: int, mode: str, pad_fraction: float) -> Box:
    """The part of the frame to send for ``box``: padded (plate) or widened (vehicle), clamped."""
    w, h = max(1, box.width), max(1, box.height)
    if mode == "vehicle":
        cx = box.centre[0]
        half = VEHICLE_HALF_WIDTH_PLATES * w
        region = Box.outward(cx - half, box.y1 - VEHICLE_ABOVE_PLATES * w, cx + half, box.y2 + VEHICLE_BELOW_PLATES * w)
    else:
        # a plate is wide and short: padding by its height alone leaves the reader no margin
        pad_x = pad_fraction * w
        region = box.expand(pad_x, max(pad_fraction * h, pad_x / 2))
    return region.clamp(frame_w, frame_h)


def sharpness(image: Image) -> float:
    """Variance of the Laplacian of the grey image: higher is sharper (blur, glare lower it)."""
    if image.size == 0:
        return 0.0
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def quality_score(plate_width_px: int, sharp: float, det_score: float) -> float:
    """Rank of a crop within a pass, 0..1: size, sharpness and detector confidence together."""
    size = min(1.0, plate_width_px / FULL_SIZE_PLATE_PX)
    sharp_term = sharp / (sharp + SHARPNESS_HALF)
    return size * sharp_term * max(0.0, min(1.0, det_score))


def encode_jpeg(image: Image, quality: int, max_bytes: int) -> bytes:
    """JPEG of ``image`` no larger than ``max_bytes``: lower the quality to 50, then the size."""
    img = image
    q = quality
    while True:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])
        if not ok:
            raise AgentError(f"JPEG encoding failed for a {img.shape} image")
        data = buf.tobytes()
        if len(data) <= max_bytes:
            return data
        if q > MIN_JPEG_QUALITY:
            q = max(MIN_JPEG_QUALITY, q - 10)
            continue
        h, w = img.shape[:2]
        if w < 16 or h < 16:
            raise AgentError(f"cannot encode a JPEG under {max_bytes} bytes")
        size = (max(8, int(w * SCALE_STEP)), max(8, int(h * SCALE_STEP)))
        img = np.asarray(cv2.resize(img, size, interpolation=cv2.INTER_AREA), np.uint8)


class Cropper:
    """Builds the reader's image for each detection from the ``[crop]`` config section."""

    def __init__(self, cfg: CropConfig) -> None:
        self.cfg = cfg

    def crop(self, frame: Frame, detection: Detection) -> PlateCrop | None:
        """The crop for one detection (the detector has dropped plates under its minimum width),
        or None when it lies outside the frame."""
        box = detection.box
        frame_h, frame_w = frame.image.shape[:2]
        region = crop_region(box, frame_w, frame_h, self.cfg.mode, self.cfg.pad_fraction)
        plate = box.clamp(frame_w, frame_h)
        if region.area <= 0 or plate.area <= 0:
            return None
        sharp = sharpness(plate.pixels(frame.image))
        return PlateCrop(
            camera_id=frame.camera_id,
            frame_seq=frame.seq,
            wall_time=frame.wall_time,
            mono_time=frame.mono_time,
            detection=detection,
            region=region,
            jpeg=b"",
            sharpness=sharp,
            quality=quality_score(plate.width, sharp, detection.score),
            pixels=region.pixels(frame.image).copy(),  # not a view: a held crop must not keep its frame
        )

    def encode(self, crop: PlateCrop) -> PlateCrop:
        """The crop with its JPEG, made only once the upload gate sends it: most detections are
        never sent, and encoding is the costly part of a crop on a Pi."""
        if crop.jpeg or crop.pixels is None:
            return crop
        jpeg = encode_jpeg(np.ascontiguousarray(crop.pixels), self.cfg.jpeg_quality, self.cfg.max_bytes)
        return dataclasses.replace(crop, jpeg=jpeg, pixels=None)
