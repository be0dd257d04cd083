"""Plate Recognizer JSON -> ``PlateRead``s in frame pixels; anything unusable -> ``BadResponse``.

Handles the standard shape and the ``detection_mode = "vehicle"`` shape. The parser trusts nothing:
every field is type- and range-checked, lists are capped, and no other exception escapes.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from ..plates import normalize
from ..types import Box, Candidate, PlateCrop, PlateRead, Vehicle
from .errors import BadResponse

MAX_RESULTS = 64  # plates in one crop; more is a hostile or broken answer
MAX_LIST = 32  # candidates, colours, make/models per result
MAX_TEXT = 64  # characters in any string we keep
MAX_COORD = 1_000_000.0


@dataclass(frozen=True, slots=True)
class Usage:
    """Lookups used in the current period, from the SDK's /info/ or the cloud's /v1/statistics/."""

    calls: int
    limit: int | None = None  # None: no known limit
    resets_on: str = ""  # ISO 8601, cloud only
    version: str = ""  # SDK only

    @property
    def fraction(self) -> float | None:
        return self.calls / self.limit if self.limit else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "limit": self.limit,
            "resets_on": self.resets_on,
            "version": self.version,
            "fraction": self.fraction,
        }


# ---------------------------------------------------------------- JSON bytes


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")


def decode_json(body: bytes) -> Any:
    """Strict JSON: UTF-8 only, no NaN/Infinity, bounded nesting (RecursionError is caught)."""
    try:
        text = body.decode("utf-8")
        return json.loads(text, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise BadResponse(f"answer is not valid JSON ({type(err).__name__})") from None


# ---------------------------------------------------------------- field checks


def _obj(v: Any, path: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise BadResponse(f"{path}: must be an object, not {type(v).__name__}")
    return v


def _list(v: Any, path: str, cap: int = MAX_LIST) -> list[Any]:
    if not isinstance(v, list):
        raise BadResponse(f"{path}: must be a list, not {type(v).__name__}")
    if len(v) > cap:
        raise BadResponse(f"{path}: more than {cap} items")
    return v


def _num(v: Any, path: str, lo: float = -MAX_COORD, hi: float = MAX_COORD) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise BadResponse(f"{path}: must be a number, not {type(v).__name__}")
    f = float(v)
    if not math.isfinite(f) or not lo <= f <= hi:
        raise BadResponse(f"{path}: out of range [{lo}, {hi}]")
    return f


def _score(v: Any, path: str) -> float:
    return _num(v, path, 0.0, 1.0)


def _str(v: Any, path: str) -> str:
    if not isinstance(v, str):
        raise BadResponse(f"{path}: must be a string, not {type(v).__name__}")
    if len(v) > MAX_TEXT:
        raise BadResponse(f"{path}: longer than {MAX_TEXT} characters")
    return v


# ---------------------------------------------------------------- geometry


class _Mapper:
    """Crop-JPEG pixels -> frame pixels: scale by region/JPEG size, offset by the region origin."""

    def __init__(self, region: Box, image_size: tuple[int, int] | None) -> None:
        self.region = region
        w, h = image_size if image_size else (region.width, region.height)
        self.sx = region.width / w if w > 0 and region.width > 0 else 1.0
        self.sy = region.height / h if h > 0 and region.height > 0 else 1.0

    def crop_box(self, v: Any, path: str) -> tuple[float, float, float, float]:
        d = _obj(v, path)
        xs = (_num(d.get("xmin"), f"{path}.xmin"), _num(d.get("xmax"), f"{path}.xmax"))
        ys = (_num(d.get("ymin"), f"{path}.ymin"), _num(d.get("ymax"), f"{path}.ymax"))
        return min(xs), min(ys), max(xs), max(ys)

    def frame_box(self, b: tuple[float, float, float, float]) -> Box:
        r = self.region

        def fx(x: float) -> int:
            return min(max(r.x1 + round(x * self.sx), r.x1), max(r.x1, r.x2))

        def fy(y: float) -> int:
            return min(max(r.y1 + round(y * self.sy), r.y1), max(r.y1, r.y2))

        return Box(fx(b[0]), fy(b[1]), fx(b[2]), fy(b[3]))


# ---------------------------------------------------------------- shapes


def _top(v: Any, path: str, key: str) -> tuple[str, float]:
    """First entry of a ``[{key: str, score: num}, ...]`` list, or ("", 0)."""
    if v is None:
        return "", 0.0
    items = _list(v, path)
    if not items:
        return "", 0.0
    first = _obj(items[0], f"{path}[0]")
    return _str(first.get(key), f"{path}[0].{key}"), _score(first.get("score"), f"{path}[0].score")


def _candidates(v: Any, path: str, key: str) -> tuple[Candidate, ...]:
    if v is None:
        return ()
    out = []
    for i, c in enumerate(_list(v, path)):
        c = _obj(c, f"{path}[{i}]")
        text = normalize(_str(c.get(key), f"{path}[{i}].{key}"))
        out.append(Candidate(text, _score(c.get("score"), f"{path}[{i}].score")))
    return tuple(out)


def _vehicle(v: Any, path: str, m: _Mapper, props: dict[str, Any] | None) -> Vehicle | None:
    if v is None:
        return None
    d = _obj(v, path)
    vtype = _str(d.get("type", ""), f"{path}.type")
    score = _score(d.get("score", 0.0), f"{path}.score")
    box = None
    if d.get("box") is not None:
        b = m.crop_box(d["box"], f"{path}.box")
        if any(b):  # the API sends all zeros when it found no vehicle
            box = m.frame_box(b)
    make = model = color = orientation = ""
    if props is not None:
        mm = _list(props.get("make_model", []), f"{path}.props.make_model")
        if mm:
            first = _obj(mm[0], f"{path}.props.make_model[0]")
            make = _str(first.get("make", ""), f"{path}.props.make_model[0].make")
            model = _str(first.get("model", ""), f"{path}.props.make_model[0].model")
        color = _top(props.get("color"), f"{path}.props.color", "value")[0]
        orientation = _top(props.get("orientation"), f"{path}.props.orientation", "value")[0]
    if not (vtype or score or box or make or color or orientation):
        return None
    return Vehicle(vtype, score, box, make, model, color, orientation)


def _standard(r: dict[str, Any], path: str, crop: PlateCrop, m: _Mapper) -> PlateRead:
    raw_box = m.crop_box(r.get("box"), f"{path}.box")
    region = r.get("region")
    code, rscore = "", 0.0
    if region is not None:
        rd = _obj(region, f"{path}.region")
        code = _str(rd.get("code", ""), f"{path}.region.code")
        rscore = _score(rd.get("score", 0.0), f"{path}.region.score")
    vehicle = _vehicle(r.get("vehicle"), f"{path}.vehicle", m, None)
    make, mscore = "", 0.0
    model = ""
    if r.get("model_make") is not None:
        mm = _list(r["model_make"], f"{path}.model_make")
        if mm:
            first = _obj(mm[0], f"{path}.model_make[0]")
            make = _str(first.get("make", ""), f"{path}.model_make[0].make")
            model = _str(first.get("model", ""), f"{path}.model_make[0].model")
            mscore = _score(first.get("score", 0.0), f"{path}.model_make[0].score")
    color = _top(r.get("color"), f"{path}.color", "color")[0]
    orientation = _top(r.get("orientation"), f"{path}.orientation", "orientation")[0]
    if make or color or orientation:
        base = vehicle or Vehicle()
        vehicle = Vehicle(base.type, base.score, base.box, make, model, color, orientation)
    extra: dict[str, Any] = {"shape": "standard", "crop_box": [round(c) for c in raw_box]}
    if mscore:
        extra["make_model_score"] = mscore
    return PlateRead(
        camera_id=crop.camera_id,
        plate=normalize(_str(r.get("plate"), f"{path}.plate")),
        score=_score(r.get("score"), f"{path}.score"),
        dscore=_score(r.get("dscore", 0.0), f"{path}.dscore"),
        box=m.frame_box(raw_box),
        wall_time=crop.wall_time,
        mono_time=crop.mono_time,
        region=code,
        region_score=rscore,
        candidates=_candidates(r.get("candidates"), f"{path}.candidates", "plate"),
        vehicle=vehicle,
        crop=crop,
        extra=extra,
    )


def _vehicle_mode(r: dict[str, Any], path: str, crop: PlateCrop, m: _Mapper) -> PlateRead | None:
    p = r.get("plate")
    if p is None:
        return None  # a vehicle without a readable plate: nothing for a plate gate to act on
    pd = _obj(p, f"{path}.plate")
    raw_box = m.crop_box(pd.get("box"), f"{path}.plate.box")
    props = _obj(pd.get("props", {}), f"{path}.plate.props")
    cands = _candidates(props.get("plate", []), f"{path}.plate.props.plate", "value")
    code, rscore = _top(props.get("region"), f"{path}.plate.props.region", "value")
    vd = r.get("vehicle")
    vprops = None
    if isinstance(vd, dict) and vd.get("props") is not None:
        vprops = _obj(vd["props"], f"{path}.vehicle.props")
    return PlateRead(
        camera_id=crop.camera_id,
        plate=cands[0].plate if cands else "",
        score=cands[0].score if cands else 0.0,
        dscore=_score(pd.get("score", 0.0), f"{path}.plate.score"),
        box=m.frame_box(raw_box),
        wall_time=crop.wall_time,
        mono_time=crop.mono_time,
        region=code,
        region_score=rscore,
        candidates=cands,
        vehicle=_vehicle(vd, f"{path}.vehicle", m, vprops),
        crop=crop,
        extra={"shape": "vehicle", "crop_box": [round(c) for c in raw_box]},
    )


def parse_reads(doc: Any, crop: PlateCrop, image_size: tuple[int, int] | None) -> list[PlateRead]:
    """Reads in a decoded answer, boxes mapped to frame pixels; ``image_size`` is the JPEG's (w, h)."""
    d = _obj(doc, "answer")
    if "error" in d:
        raise BadResponse("answer carries an error")
    results = _list(d.get("results"), "results", MAX_RESULTS)
    m = _Mapper(crop.region, image_size)
    reads = []
    for i, r in enumerate(results):
        r = _obj(r, f"results[{i}]")
        path = f"results[{i}]"
        if isinstance(r.get("plate"), str):
            read: PlateRead | None = _standard(r, path, crop, m)
        else:
            read = _vehicle_mode(r, path, crop, m)
        if read is not None:
            reads.append(read)
    return reads


def parse_usage(doc: Any) -> Usage:
    """Cloud ``/v1/statistics/`` or SDK ``/info/`` (and the SDK's per-lookup ``usage``)."""
    d = _obj(doc, "answer")
    u = _obj(d.get("usage", {}), "usage")
    calls = int(_num(u.get("calls", 0), "usage.calls", 0, 1e12))
    limit = None
    for key, src in (("total_calls", d), ("max_calls", u)):
        if src.get(key) is not None:
            limit = int(_num(src[key], key, 0, 1e12)) or None
            break
    resets = _str(u.get("resets_on", ""), "usage.resets_on")
    version = _str(d.get("version", ""), "version") if isinstance(d.get("version"), str) else ""
    return Usage(calls, limit, resets, version)


# ---------------------------------------------------------------- JPEG size


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's frame header without decoding it; None if not found."""
    if data[:2] != b"\xff\xd8":
        return None
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        seg = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in _SOF and i + 9 <= n:
            h = int.from_bytes(data[i + 5 : i + 7], "big")
            w = int.from_bytes(data[i + 7 : i + 9], "big")
            return (w, h) if w and h else None
        if marker == 0xDA or seg < 2:
            return None
        i += 2 + seg
    return None


__all__ = ["Usage", "decode_json", "jpeg_size", "parse_reads", "parse_usage"]
