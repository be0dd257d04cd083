"""The HTTP clients against the contract server: what is sent, what comes out, each error type."""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from datetime import datetime, UTC

import pytest

from agent.errors import ConfigError, ReaderError
from agent.read import READERS, CloudReader, SdkReader, read_image
from agent.read.client import iso_utc
from agent.read.errors import (
    BadResponse,
    ConnectionFailed,
    Forbidden,
    ServerError,
    Throttled,
    Timeout,
    TooLarge,
)
from agent.types import Box
from tests.fixtures_pr import PR_TOKEN
from tests.prserver import PRServer
from tests.read.conftest import make_crop, reader_cfg


def cloud(server: PRServer, **kw: object) -> CloudReader:
    return CloudReader(reader_cfg(server.url, **kw), token=PR_TOKEN)


def test_readers_table_names_both_backends() -> None:
    assert READERS == {"cloud": CloudReader, "sdk": SdkReader}


def test_sends_fields_repeated_regions_timestamp_and_auth(pr_server: PRServer) -> None:
    reader = cloud(pr_server, regions=["gb", "us-ca"], mmc=True, config={"mode": "fast", "threshold_d": 0.2})
    crop = make_crop(7, camera_id="north", wall_time=1_600_000_000.25)
    reader.read(crop)
    (req,) = pr_server.lookups()
    assert req.headers["authorization"] == f"Token {PR_TOKEN}"
    assert req.headers["content-type"].startswith("multipart/form-data")
    assert req.fields["regions"] == ["gb", "us-ca"]
    assert req.fields["camera_id"] == ["north"]
    assert req.fields["mmc"] == ["true"]
    assert json.loads(req.fields["config"][0]) == {"mode": "fast", "threshold_d": 0.2}
    ts = req.fields["timestamp"][0]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", ts)
    assert ts == "2020-09-13T12:26:40.250000Z"
    assert req.upload == crop.jpeg
    reader.close()


def test_optional_fields_left_out_and_per_camera_overrides(pr_server: PRServer) -> None:
    cfg = reader_cfg(pr_server.url)
    north = reader_cfg(pr_server.url, regions=["fr"], config={"region": "strict"})
    reader = CloudReader(cfg, cameras={"north": north}, token=PR_TOKEN)
    reader.read(make_crop(camera_id="south"))
    reader.read(make_crop(camera_id="north"))
    south_req, north_req = pr_server.lookups()
    assert set(south_req.fields) == {"camera_id", "timestamp"}
    assert north_req.fields["regions"] == ["fr"]
    assert json.loads(north_req.fields["config"][0]) == {"region": "strict"}


def test_iso_utc_is_utc() -> None:
    t = datetime(2021, 3, 4, 5, 6, 7, 891000, tzinfo=UTC).timestamp()
    assert iso_utc(t) == "2021-03-04T05:06:07.891000Z"


def test_read_maps_boxes_from_scaled_jpeg_to_frame(pr_server: PRServer) -> None:
    region = Box(400, 300, 600, 350)  # 200 x 50 in the frame, JPEG at 2x: 400 x 100
    crop = make_crop(region=region, scale=2.0)
    reads = cloud(pr_server).read(crop)
    assert pr_server.lookups()[0].image_size == (400, 100)
    (read,) = reads
    assert read.plate == "ABC123" and read.score == pytest.approx(0.904) and read.dscore == pytest.approx(0.99)
    # server box: 10%..90% x, 25%..75% y of the JPEG -> same fractions of the region
    assert read.box == Box(420, 312, 580, 338)
    assert read.extra["crop_box"] == [40, 25, 360, 75]
    assert read.region == "us" and read.region_score == pytest.approx(0.747)
    assert [c.plate for c in read.candidates] == ["ABC123", "ABC128"]
    assert read.vehicle is not None and read.vehicle.type == "Sedan" and read.vehicle.box == region
    assert read.camera_id == crop.camera_id and read.wall_time == crop.wall_time and read.crop is crop
    assert not read.late


def test_mmc_fields_fill_the_vehicle(pr_server: PRServer) -> None:
    (read,) = cloud(pr_server, mmc=True).read(make_crop())
    assert read.vehicle is not None
    assert (read.vehicle.make, read.vehicle.model, read.vehicle.color, read.vehicle.orientation) == (
        "Riley", "RMF", "black", "Front")


def test_vehicle_mode_shape(pr_server: PRServer) -> None:
    pr_server.texts.append("nhk552")
    reader = cloud(pr_server, config={"detection_mode": "vehicle"})
    reads = reader.read(make_crop(region=Box(0, 0, 200, 100)))
    assert len(reads) == 1  # the second vehicle has no plate
    (read,) = reads
    assert read.plate == "NHK552" and read.score == pytest.approx(0.9) and read.dscore == pytest.approx(0.925)
    assert read.region == "us" and read.extra["shape"] == "vehicle"
    assert read.box == Box(20, 25, 180, 75)
    assert read.vehicle is not None
    assert (read.vehicle.type, read.vehicle.make, read.vehicle.color, read.vehicle.orientation) == (
        "Sedan", "Riley", "black", "Front")


def test_plate_text_comes_from_the_test(pr_server: PRServer) -> None:
    pr_server.plates["north"] = "xy12zz"
    pr_server.texts.append("first1")
    reader = cloud(pr_server)
    assert reader.read(make_crop(camera_id="north"))[0].plate == "FIRST1"
    assert reader.read(make_crop(camera_id="north"))[0].plate == "XY12ZZ"
    pr_server.texts.append("")
    assert reader.read(make_crop()) == []  # no plate in the picture


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("403", Forbidden),
        ("413", TooLarge),
        ("500", ServerError),
        ("502", ServerError),
        ("slow", Timeout),
        ("drop", ConnectionFailed),
        ("malformed", BadResponse),
        ("error", BadResponse),
        ("huge", BadResponse),
        ("nan", BadResponse),
    ],
)
def test_each_fault_is_a_typed_reader_error(pr_server: PRServer, fault: str, error: type) -> None:
    pr_server.slow_s = 3.0
    pr_server.faults.append(fault)
    with pytest.raises(error) as info:
        cloud(pr_server, timeout_read_s=0.5).read(make_crop())
    assert isinstance(info.value, ReaderError)
    assert PR_TOKEN not in str(info.value)


def test_429_carries_the_retry_hint(pr_server: PRServer) -> None:
    pr_server.faults.append("429")
    with pytest.raises(Throttled) as info:
        cloud(pr_server).read(make_crop())
    assert info.value.retry_after_s == 1.0


def test_real_size_limit_gives_413(pr_server: PRServer) -> None:
    pr_server.max_upload_bytes = 20_000
    with pytest.raises(TooLarge):
        cloud(pr_server).read(make_crop(region=Box(0, 0, 300, 300), noise=True))


def test_wrong_token_is_forbidden_and_not_echoed(pr_server: PRServer) -> None:
    reader = CloudReader(reader_cfg(pr_server.url), token="wrong-token-123456")
    with pytest.raises(Forbidden, match="Invalid token"):
        reader.read(make_crop())
    assert pr_server.lookups()[0].status == 403


def test_connection_refused_even_with_a_kept_alive_connection(pr_server: PRServer) -> None:
    reader = cloud(pr_server)
    assert reader.read(make_crop())
    pr_server.stop_listening()
    with pytest.raises(ConnectionFailed):
        reader.read(make_crop())
    pr_server.resume()
    assert reader.read(make_crop())  # the same session recovers


def test_cloud_needs_a_token() -> None:
    with pytest.raises(ConfigError, match="PLATE_RECOGNIZER_TOKEN"):
        CloudReader(reader_cfg("http://127.0.0.1:9/"), environ={})


def test_token_from_environment_and_credential_file(pr_server: PRServer, tmp_path) -> None:
    (tmp_path / "plate_recognizer_token").write_text(PR_TOKEN + "\n")
    reader = CloudReader(reader_cfg(pr_server.url), environ={"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert reader.read(make_crop())
    assert PR_TOKEN not in repr(reader)


def test_cloud_usage_from_statistics(pr_server: PRServer) -> None:
    reader = cloud(pr_server)
    reader.read(make_crop())
    usage = reader.usage()
    assert usage is not None and (usage.calls, usage.limit) == (1, 2500)
    assert usage.resets_on == "2019-01-14T00:00:00Z"
    assert pr_server.requests[-1].path == "/v1/statistics/"
    assert pr_server.requests[-1].headers["authorization"] == f"Token {PR_TOKEN}"


def test_sdk_reads_without_token_and_usage_from_info(pr_sdk_server: PRServer) -> None:
    reader = SdkReader(reader_cfg(pr_sdk_server.url, type="sdk"))
    assert reader.read(make_crop())[0].plate == "ABC123"
    assert "authorization" not in pr_sdk_server.lookups()[0].headers
    usage = reader.usage()
    assert usage is not None and (usage.calls, usage.limit, usage.version) == (1, 2500, "1.3.8")
    assert pr_sdk_server.requests[-1].path == "/info/"


def test_default_urls() -> None:
    assert SdkReader(reader_cfg("", type="sdk")).url == "http://localhost:8080/v1/plate-reader/"
    assert SdkReader(reader_cfg("", type="sdk")).usage_url() == "http://localhost:8080/info/"
    c = CloudReader(reader_cfg(""), token="x" * 40)
    assert c.url == "https://api.platerecognizer.com/v1/plate-reader/"
    assert c.usage_url() == "https://api.platerecognizer.com/v1/statistics/"


def test_read_image_for_probe(pr_server: PRServer, tmp_path) -> None:
    import cv2
    import numpy as np

    path = tmp_path / "car.png"
    cv2.imwrite(str(path), np.full((120, 300, 3), 200, np.uint8))
    out = read_image(path, reader_cfg(pr_server.url), environ={"PLATE_RECOGNIZER_TOKEN": PR_TOKEN})
    json.dumps(out)  # all JSON
    assert out["image"]["width"] == 300 and out["reads"][0]["plate"] == "ABC123"
    assert out["reads"][0]["box"] == {"xmin": 30, "ymin": 30, "xmax": 270, "ymax": 90}
    assert out["response"]["results"][0]["plate"] == "abc123"
    assert pr_server.lookups()[0].upload[:2] == b"\xff\xd8"  # PNG converted to JPEG


def test_token_never_logged(pr_server: PRServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # urllib3 and requests included
    reader = cloud(pr_server)
    pr_server.faults.extend(["403", "500", "drop"])
    for _ in range(4):
        try:
            reader.read(make_crop())
        except ReaderError as err:
            logging.getLogger("test").exception("failed: %s", err)
    assert caplog.records
    assert PR_TOKEN not in caplog.text


def test_wrong_path_is_worth_retrying_and_bad_upload_is_not(pr_server: PRServer) -> None:
    from agent.read.errors import Rejected, Unavailable

    with pytest.raises(Unavailable, match="404"):
        CloudReader(reader_cfg(pr_server.base_url + "/v2/nope/"), token=PR_TOKEN).read(make_crop())
    bad = dataclasses.replace(make_crop(), jpeg=b"not a jpeg")
    with pytest.raises(Rejected) as info:
        cloud(pr_server).read(bad)
    assert info.value.status == 400
