"""The parser trusts nothing: arbitrary or hostile JSON gives reads or BadResponse, never a crash."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.errors import ReaderError
from agent.read.errors import BadResponse
from agent.read.parse import decode_json, jpeg_size, parse_reads, parse_usage
from agent.types import Box
from tests.read.conftest import jpeg_of, make_crop

CROP = make_crop(region=Box(100, 50, 300, 150))  # 200 x 100, JPEG the same size

STANDARD: dict[str, Any] = {
    "processing_time": 288.758,
    "results": [
        {
            "box": {"xmin": 20, "ymin": 30, "xmax": 120, "ymax": 70},
            "plate": "nhk552",
            "region": {"code": "gb", "score": 0.747},
            "vehicle": {"score": 0.798, "type": "Sedan", "box": {"xmin": 0, "ymin": 0, "xmax": 200, "ymax": 100}},
            "score": 0.904,
            "candidates": [{"score": 0.904, "plate": "nhk552"}, {"score": 0.7, "plate": "nhk55z"}],
            "dscore": 0.99,
            "model_make": [{"make": "Riley", "model": "RMF", "score": 0.306}],
            "color": [{"color": "black", "score": 0.937}],
            "orientation": [{"orientation": "Front", "score": 0.937}],
        }
    ],
    "filename": "1617_7M83K_car.jpg",
    "version": 1,
    "camera_id": None,
    "timestamp": "2020-10-12T16:17:27.574008Z",
}

VEHICLE: dict[str, Any] = {
    "filename": "car.jpg",
    "timestamp": "2021-11-23 17:56:47.896406",
    "camera_id": "my-camera",
    "processing_time": 58.184,
    "results": [
        {
            "plate": {
                "type": "Plate",
                "score": 0.925,
                "box": {"xmin": 146, "ymin": 48, "xmax": 176, "ymax": 57},
                "props": {"plate": [{"value": "nhk552", "score": 0.838}], "region": [{"value": "gb", "score": 0.931}]},
            },
            "vehicle": {
                "type": "Sedan",
                "score": 0.834,
                "box": {"xmin": 68, "ymin": 10, "xmax": 190, "ymax": 64},
                "props": {
                    "make_model": [{"make": "Riley", "model": "RMF", "score": 0.339}],
                    "orientation": [{"value": "Front", "score": 0.939}],
                    "color": [{"value": "black", "score": 0.846}],
                },
            },
        },
        {"plate": None, "vehicle": {"type": "Bus", "score": 0.5, "box": {"xmin": 1, "ymin": 1, "xmax": 2, "ymax": 2}}},
    ],
}


def test_standard_shape_from_the_contract() -> None:
    (r,) = parse_reads(STANDARD, CROP, (200, 100))
    assert (r.plate, r.score, r.dscore, r.region) == ("NHK552", 0.904, 0.99, "gb")
    assert r.box == Box(120, 80, 220, 120)  # offset by the region origin
    assert r.candidates[1].plate == "NHK55Z"
    assert r.vehicle is not None and (r.vehicle.make, r.vehicle.color, r.vehicle.orientation) == (
        "Riley", "black", "Front")
    assert r.vehicle.box == Box(100, 50, 300, 150)
    assert r.extra["make_model_score"] == 0.306


def test_vehicle_shape_from_the_contract() -> None:
    (r,) = parse_reads(VEHICLE, CROP, (200, 100))
    assert (r.plate, r.score, r.dscore, r.region, r.region_score) == ("NHK552", 0.838, 0.925, "gb", 0.931)
    assert r.box == Box(246, 98, 276, 107)
    assert r.vehicle is not None and r.vehicle.type == "Sedan" and r.vehicle.make == "Riley"
    assert r.vehicle.box == Box(168, 60, 290, 114)


def test_scaled_jpeg_boxes_scale_back() -> None:
    (r,) = parse_reads(STANDARD, CROP, (400, 200))  # JPEG at twice the region's size
    assert r.box == Box(110, 65, 160, 85)


def test_zero_vehicle_box_means_no_vehicle_box() -> None:
    doc = copy.deepcopy(STANDARD)
    doc["results"][0]["vehicle"] = {"score": 0, "type": "", "box": {"xmin": 0, "ymin": 0, "xmax": 0, "ymax": 0}}
    for key in ("model_make", "color", "orientation"):
        del doc["results"][0][key]
    assert parse_reads(doc, CROP, None)[0].vehicle is None


def test_boxes_are_clamped_to_the_crop_region() -> None:
    doc = copy.deepcopy(STANDARD)
    doc["results"][0]["box"] = {"xmin": -50, "ymin": -5, "xmax": 9000, "ymax": 70}
    assert parse_reads(doc, CROP, (200, 100))[0].box == Box(100, 50, 300, 120)


def mutate(doc: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (["results"], "nope"),
        (["results"], None),
        (["results", 0], 7),
        (["results", 0, "plate"], 12345),
        (["results", 0, "score"], "0.9"),
        (["results", 0, "score"], True),
        (["results", 0, "score"], 1.5),
        (["results", 0, "score"], float("nan")),
        (["results", 0, "box"], [1, 2, 3, 4]),
        (["results", 0, "box", "xmin"], None),
        (["results", 0, "box", "xmin"], 1e300),
        (["results", 0, "candidates"], {"plate": "x"}),
        (["results", 0, "candidates", 0, "plate"], ["x"]),
        (["results", 0, "region"], "gb"),
        (["results", 0, "vehicle", "box"], "big"),
        (["results", 0, "plate"], "x" * 10_000),
        (["results", 0, "candidates"], [{"plate": "a", "score": 0.1}] * 1000),
        (["results"], [STANDARD["results"][0]] * 1000),
        (["error"], "Licence expired"),
    ],
)
def test_wrong_types_and_sizes_are_bad_responses(path: list[Any], value: Any) -> None:
    with pytest.raises(BadResponse):
        parse_reads(mutate(STANDARD, path, value), CROP, (200, 100))


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b'{"results": [',
        b"\xff\xfe\x00garbage",
        b'{"results": [], "x": "\xc3\x28"}',  # invalid UTF-8
        b'{"results": [{"score": NaN}]}',
        b'{"results": [{"score": Infinity}]}',
        b"[" * 100_000 + b"]" * 100_000,  # deep nesting
        b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    ],
)
def test_hostile_bodies_are_bad_responses(body: bytes) -> None:
    with pytest.raises(BadResponse):
        parse_reads(decode_json(body), CROP, None)


def test_a_list_at_top_level_is_bad() -> None:
    with pytest.raises(BadResponse):
        parse_reads([], CROP, None)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=5),
    max_leaves=30,
)
keys = st.sampled_from(
    ["results", "plate", "box", "xmin", "ymin", "xmax", "ymax", "score", "dscore", "region", "code", "vehicle",
     "type", "candidates", "props", "value", "make_model", "color", "orientation", "model_make", "error", "usage",
     "calls", "total_calls"]
)
shaped = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=6),
    max_leaves=40,
)


def _only_reads_or_reader_errors(doc: Any) -> None:
    try:
        reads = parse_reads(doc, CROP, (200, 100))
    except ReaderError:
        return
    for r in reads:
        assert CROP.region.x1 <= r.box.x1 <= r.box.x2 <= CROP.region.x2
        assert CROP.region.y1 <= r.box.y1 <= r.box.y2 <= CROP.region.y2
        assert 0.0 <= r.score <= 1.0 and 0.0 <= r.dscore <= 1.0
        json.dumps(r.extra)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_arbitrary_json_gives_reads_or_reader_error(doc: Any) -> None:
    _only_reads_or_reader_errors(doc)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(keys, shaped, max_size=4), st.lists(st.dictionaries(keys, shaped, max_size=8), max_size=3))
def test_nearly_right_json_gives_reads_or_reader_error(top: dict[str, Any], results: list[Any]) -> None:
    _only_reads_or_reader_errors({**top, "results": results})
    try:
        parse_usage({**top, "usage": results[0] if results else top})
    except ReaderError:
        pass


def leaf(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the right kind of value, sometimes anything."""
    return st.one_of(valid, valid, valid, shaped)


coord = st.integers(-100, 1000) | st.floats(-1e7, 1e7)
score = st.floats(0, 1) | st.floats(-2, 2)
box = st.fixed_dictionaries({k: leaf(coord) for k in ("xmin", "ymin", "xmax", "ymax")})
standard_result = st.fixed_dictionaries(
    {"box": leaf(box), "plate": leaf(st.text(max_size=10)), "score": leaf(score)},
    optional={
        "dscore": leaf(score),
        "region": leaf(st.fixed_dictionaries({"code": leaf(st.text(max_size=5)), "score": leaf(score)})),
        "vehicle": leaf(
            st.fixed_dictionaries({"type": leaf(st.text(max_size=5)), "score": leaf(score), "box": leaf(box)})
        ),
        "candidates": leaf(st.lists(st.fixed_dictionaries({"plate": leaf(st.text(max_size=8)), "score": leaf(score)}),
                                    max_size=3)),
        "color": leaf(st.lists(st.fixed_dictionaries({"color": leaf(st.text(max_size=5)), "score": leaf(score)}),
                               max_size=2)),
    },
)
vehicle_result = st.fixed_dictionaries(
    {"plate": leaf(st.fixed_dictionaries(
        {"box": leaf(box), "score": leaf(score)},
        optional={"props": leaf(st.fixed_dictionaries({"plate": leaf(st.lists(st.fixed_dictionaries(
            {"value": leaf(st.text(max_size=8)), "score": leaf(score)}), max_size=3))}))},
    ))},
    optional={"vehicle": leaf(st.fixed_dictionaries({"type": leaf(st.text(max_size=5)), "box": leaf(box)}))},
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(standard_result | vehicle_result, max_size=3), st.tuples(st.integers(0, 800), st.integers(0, 800)))
def test_schema_shaped_json_gives_reads_or_reader_error(results: list[Any], size: tuple[int, int]) -> None:
    try:
        reads = parse_reads({"results": results}, CROP, size)
    except ReaderError:
        return
    for r in reads:
        assert CROP.region.x1 <= r.box.x1 <= r.box.x2 <= CROP.region.x2
        assert CROP.region.y1 <= r.box.y1 <= r.box.y2 <= CROP.region.y2


def test_schema_strategy_reaches_successful_reads() -> None:
    """Guard for the property test above: its strategy must also produce valid answers."""
    seen = []

    @settings(max_examples=150, deadline=None, database=None, derandomize=True)
    @given(st.lists(standard_result | vehicle_result, min_size=1, max_size=2))
    def probe(results: list[Any]) -> None:
        try:
            seen.append(len(parse_reads({"results": results}, CROP, (200, 100))))
        except ReaderError:
            pass

    probe()
    assert sum(seen) >= 3


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_bad_response(body: bytes) -> None:
    try:
        doc = decode_json(body)
    except BadResponse:
        return
    _only_reads_or_reader_errors(doc)


def test_usage_shapes() -> None:
    cloud = parse_usage({"usage": {"month": 1, "calls": 128, "year": 2019, "resets_on": "2019-01-14T00:00:00Z"},
                         "total_calls": 2500})
    assert (cloud.calls, cloud.limit, cloud.resets_on, cloud.fraction) == (128, 2500, "2019-01-14T00:00:00Z", 0.0512)
    sdk = parse_usage({"version": "1.3.8", "license_key": "XXX", "total_calls": 2500, "usage": {"calls": 10}})
    assert (sdk.calls, sdk.limit, sdk.version) == (10, 2500, "1.3.8")
    answer = parse_usage({"usage": {"max_calls": 1000, "calls": 44}, "results": []})
    assert (answer.calls, answer.limit) == (44, 1000)
    with pytest.raises(BadResponse):
        parse_usage({"usage": {"calls": "many"}})


def test_jpeg_size_reads_the_header() -> None:
    assert jpeg_size(jpeg_of(123, 45)) == (123, 45)
    assert jpeg_size(b"\x89PNG....") is None
    assert jpeg_size(b"\xff\xd8\xff") is None
    assert jpeg_size(b"") is None
