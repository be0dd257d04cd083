"""The upload gate's rules, one by one, on drawn plates with injected times (nothing sleeps)."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest

from agent.config import UploadConfig
from agent.statics import StaticObjects, look_diff, look_of
from agent.track import CONFIDENT, EMPTY, FAILED, UNSURE, PlateTracks, Sighting, direction_of
from agent.types import APPROACHING, LEAVING, UNKNOWN, Box, Detection, PlateCrop

W, H = 640, 360


NOISE = [np.random.default_rng(seed).normal(0, 2.0, (H, W, 3)) for seed in range(4)]  # sensor noise, sigma 2


def drawn(text: str, box: Box, seed: int = 0) -> np.ndarray:
    """A frame with one white plate carrying ``text`` at ``box``."""
    img = np.full((H, W, 3), 90, np.uint8)
    cv2.rectangle(img, (box.x1, box.y1), (box.x2 - 1, box.y2 - 1), (230, 230, 230), -1)
    cv2.putText(img, text, (box.x1 + 4, box.y2 - 6), cv2.FONT_HERSHEY_SIMPLEX, box.width / 170, (20, 20, 20), 2)
    return np.clip(img + NOISE[seed % len(NOISE)], 0, 255).astype(np.uint8)


def see(box: Box, t: float, text: str = "AB12 CDE", *, moving: bool = True, whole: bool = True,
        sharp: float = 500.0, seq: int | None = None) -> tuple[PlateCrop, Sighting]:
    crop = PlateCrop("gate", seq if seq is not None else int(t * 100), 1.7e9 + t, t, Detection(box, 0.8), box,
                     b"jpeg", sharp, 0.5)
    return crop, Sighting(box, look_of(drawn(text, box, seed=int(t * 100)), box), t, moving, whole)


def gate(**kw) -> PlateTracks:
    return PlateTracks(UploadConfig(**kw), camera_id="gate")


def approach(tracks: PlateTracks, t0: float = 0.0, n: int = 8, text: str = "AB12 CDE", x: int = 260,
             answer: str | None = None) -> list[PlateCrop]:
    """A plate growing and moving down, one sighting every 0.1 s; returns the crops uploaded."""
    sent = []
    for i in range(n):
        w = 60 + 8 * i
        box = Box(x - w // 2, 150 + 10 * i, x + w // 2, 150 + 10 * i + w // 4)
        c = tracks.offer(*see(box, t0 + 0.1 * i, text))
        if c is not None:
            sent.append(c)
            if answer is not None:
                tracks.answered(c, answer)
    return sent


def gone(tracks: PlateTracks, t: float) -> list:
    """Detector frames with motion everywhere and nothing found, for 3 s up to ``t``; then expire."""
    for i in range(30, -1, -1):
        tracks.offer_frame([], t - 0.1 * i)
    return tracks.expire(t)


def from_afar(tracks: PlateTracks, y0: int, n: int = 4) -> None:
    """A plate coming closer from 0.0 s on, one sighting every 0.1 s, too small to read yet."""
    for i in range(n):
        w = 70 + 10 * i
        _, s = see(Box(260 - w // 2, y0 + 15 * i, 260 + w // 2, y0 + 15 * i + w // 4), 0.1 * i)
        assert tracks.offer(None, s) is None


SIGN = Box(420, 60, 540, 90)


# ---------------------------------------------------------------- static objects


def test_a_still_plate_is_read_once_then_never_again_across_passes():
    tracks = gate(static_after_s=2.0, pass_gap_s=2.0)
    first = tracks.offer(*see(SIGN, 0.0, "PRIVATE"))
    assert first is not None  # it is in a motion region and never read: one read
    tracks.answered(first, EMPTY)
    uploads = 0
    for t in np.arange(0.1, 5.0, 0.1):  # the rest of the first car's pass
        uploads += tracks.offer(*see(SIGN, float(t), "PRIVATE")) is not None
    gone(tracks, 10.0)  # quiet road: the sign's track ends
    for car in range(5):  # each later car wakes the detector over the sign again
        for t in np.arange(0.0, 3.0, 0.1):
            uploads += tracks.offer(*see(SIGN, 20.0 + 10 * car + float(t), "PRIVATE")) is not None
        gone(tracks, 20.0 + 10 * car + 9)
    assert uploads == 0
    assert tracks.counters["held_static"] > 100
    (obj,) = tracks.statics.snapshot(100.0)
    assert obj["state"] == "not_a_plate" and obj["hits"] > 100


def test_an_empty_answer_marks_the_place_but_not_a_different_plate_there():
    tracks = gate()
    c = tracks.offer(*see(SIGN, 0.0, "PRIVATE"))
    assert c is not None
    tracks.answered(c, EMPTY)
    assert len(tracks.statics) == 1 and tracks.statics.snapshot(0.0)[0]["state"] == "not_a_plate"
    gone(tracks, 10.0)
    assert tracks.offer(*see(SIGN, 11.0, "PRIVATE")) is None  # same place, same look
    gone(tracks, 20.0)
    other = tracks.offer(*see(SIGN, 21.0, "KX52 ODV"))  # same place, another plate: not the sign
    assert other is not None


def test_a_plate_that_never_moves_is_not_paid_for_without_motion_and_becomes_static():
    tracks = gate(static_after_s=2.0)
    for t in np.arange(0.0, 2.5, 0.1):
        assert tracks.offer(*see(SIGN, float(t), moving=False)) is None
    assert tracks.counters["held_not_moving"] > 0
    assert tracks.statics.snapshot(2.5)[0]["state"] == "unread"
    held = tracks.counters["held_static"]
    assert tracks.offer(*see(SIGN, 2.6, moving=True)) is None  # a car passing by does not make it a vehicle
    assert tracks.counters["held_static"] == held + 1


def test_a_plate_passing_close_by_does_not_drag_a_static_sign_along():
    tracks = gate(static_after_s=1.0)
    for t in np.arange(0.0, 1.5, 0.1):
        tracks.offer(*see(SIGN, float(t), "PRIVATE", moving=False))
    assert tracks.statics.snapshot(1.5)[0]["state"] == "unread"
    # a car's plate passes one plate width from the sign: the sign keeps its pass, the plate gets one
    items = [see(SIGN.offset(-100, 10), 1.6, "KX52 ODV", seq=16), see(SIGN, 1.6, "PRIVATE", seq=16)]
    assert len(tracks.offer_frame(items)) == 1
    assert len(tracks.statics) == 1 and tracks.offer(*see(SIGN, 1.7, "PRIVATE")) is None


def test_a_plate_that_never_moved_is_read_once_even_if_the_answer_was_unsure():
    tracks = gate(min_quality_gain=1.25)
    c = tracks.offer(*see(SIGN, 0.0))
    assert c is not None
    tracks.answered(c, UNSURE)
    crop, s = see(SIGN, 0.1)
    assert tracks.offer(replace(crop, quality=crop.quality * 2), s) is None  # even a better crop
    assert tracks.counters["held_still"] == 1


def test_a_static_object_is_read_once_again_after_its_ttl():
    tracks = gate(static_ttl_s=100.0)
    c = tracks.offer(*see(SIGN, 0.0))
    assert c is not None
    tracks.answered(c, EMPTY)
    gone(tracks, 10.0)
    assert tracks.offer(*see(SIGN, 50.0)) is None
    gone(tracks, 60.0)
    assert tracks.offer(*see(SIGN, 101.0)) is not None  # the TTL passed: one new read


def test_a_static_object_that_moves_is_a_vehicle_again():
    tracks = gate(static_after_s=1.0)
    for t in np.arange(0.0, 1.5, 0.1):  # a parked car, never in motion: static, unread
        tracks.offer(*see(SIGN, float(t), moving=False))
    assert tracks.statics.snapshot(1.5)[0]["state"] == "unread"
    sent = [tracks.offer(*see(SIGN.offset(0, 20 * i), 1.5 + 0.1 * i)) for i in range(1, 6)]  # it drives off
    assert sent[:3] == [None, None, None]  # the first steps away could be a car passing in front of it
    assert sum(c is not None for c in sent) == 1 and len(tracks.statics) == 0


def test_static_objects_survive_a_restart_and_are_revalidated_by_place_and_look(tmp_path):
    path = tmp_path / "static-objects-gate.json"
    before = PlateTracks(UploadConfig(), StaticObjects(86400.0, 0.05, path, boot=lambda: "boot-1"))
    c = before.offer(*see(SIGN, 0.0, "PRIVATE"))
    assert c is not None
    before.answered(c, EMPTY)
    assert path.exists()
    # same boot: the agent restarted, the object is known at once, its TTL runs on
    same = PlateTracks(UploadConfig(), StaticObjects(86400.0, 0.05, path, boot=lambda: "boot-1"))
    assert same.offer(*see(SIGN, 5.0, "PRIVATE")) is None
    saved = path.read_text()
    aged = PlateTracks(UploadConfig(), StaticObjects(100.0, 0.05, path, boot=lambda: "boot-1"))
    assert aged.offer(*see(SIGN, 150.0, "PRIVATE")) is not None  # 150 s static > TTL 100 s: read again
    path.write_text(saved)
    # after a reboot: kept but unconfirmed until seen again at its place with its look
    rebooted = StaticObjects(86400.0, 0.05, path, boot=lambda: "boot-2")
    after = PlateTracks(UploadConfig(), rebooted)
    assert after.offer(*see(SIGN.offset(-400, 200), 1.0, "PRIVATE")) is not None  # elsewhere: not it
    assert rebooted.snapshot(1.0)[0]["confirmed"] is False
    assert after.offer(*see(SIGN, 2.0, "PRIVATE")) is None
    assert rebooted.snapshot(2.0)[0]["confirmed"] is True


def test_an_unreadable_state_file_is_ignored(tmp_path):
    path = tmp_path / "static.json"
    path.write_text("{not json")
    tracks = PlateTracks(UploadConfig(), StaticObjects(86400.0, 0.05, path))
    assert tracks.offer(*see(SIGN, 0.0)) is not None


def test_the_look_tells_two_plates_apart_and_the_same_plate_apart_from_noise():
    a1 = look_of(drawn("AB12 CDE", SIGN, seed=1), SIGN)
    a2 = look_of(drawn("AB12 CDE", SIGN, seed=2), SIGN)
    b = look_of(drawn("KX52 ODV", SIGN, seed=1), SIGN)
    assert look_diff(a1, a2) <= 0.05 < look_diff(a1, b)


# ---------------------------------------------------------------- whole plates


def test_a_cut_plate_waits_for_a_whole_one():
    tracks = gate(whole_wait_s=1.0)
    box = Box(200, 330, 320, 360)
    assert tracks.offer(*see(box, 0.0, whole=False)) is None
    assert tracks.offer(*see(box.offset(0, -8), 0.1, whole=False)) is None
    whole = tracks.offer(*see(box.offset(0, -20), 0.2))
    assert whole is not None and tracks.counters["held_cut"] == 2


def test_a_plate_that_never_becomes_whole_is_read_once_after_the_deadline():
    tracks = gate(whole_wait_s=1.0)
    sent = []
    for i in range(25):
        box = Box(0, 100 + 4 * i, 100, 130 + 4 * i)  # crawls along the left edge, always cut
        c = tracks.offer(*see(box, 0.1 * i, whole=False))
        if c is not None:
            sent.append(c)
            tracks.answered(c, EMPTY)
    assert len(sent) == 1 and sent[0].mono_time == pytest.approx(1.0)


def test_a_blurred_plate_waits_like_a_cut_one():
    tracks = gate(min_sharpness=50.0, whole_wait_s=1.0)
    assert tracks.offer(*see(Box(200, 100, 320, 130), 0.0, sharp=10.0)) is None
    assert tracks.offer(*see(Box(200, 120, 330, 152), 0.1, sharp=400.0)) is not None
    assert tracks.counters["held_blurred"] == 1


# ---------------------------------------------------------------- no waiting for a better crop


@pytest.mark.parametrize(("answer", "first_box"), [(EMPTY, Box(200, 100, 290, 122)), (UNSURE, Box(200, 100, 320, 130))])
def test_an_empty_or_unsure_answer_frees_the_next_whole_crop_at_once(answer, first_box):
    # after an empty answer the next crop shows more (the plate came closer: wider); after an unsure
    # one it may show the same plate a little further on
    tracks = gate(max_uploads_per_pass=2, min_quality_gain=1.25)
    from_afar(tracks, y0=40)
    first = tracks.offer(*see(first_box, 0.4, sharp=900.0))
    assert first is not None
    assert tracks.offer(*see(Box(200, 104, 322, 135), 0.5)) is None  # in flight
    tracks.answered(first, answer)
    # the very next frame, a softer crop: no "better" needed
    second = tracks.offer(*see(Box(200, 108, 318, 138), 0.6, sharp=300.0))
    assert second is not None and second.track_id == first.track_id
    tracks.answered(second, answer)
    assert tracks.offer(*see(Box(200, 112, 332, 145), 0.7)) is None  # max_uploads_per_pass
    assert tracks.counters["held_max_uploads"] == 1


def test_a_failed_upload_frees_the_next_crop_without_marking_the_place():
    tracks = gate()
    c = tracks.offer(*see(SIGN, 0.0))
    assert c is not None
    tracks.answered(c, FAILED)
    assert len(tracks.statics) == 0


def test_the_same_view_again_after_an_unsure_answer_needs_a_better_crop():
    tracks = gate(min_quality_gain=1.25, max_uploads_per_pass=3)
    from_afar(tracks, y0=60)
    stop = Box(200, 120, 320, 150)
    first = tracks.offer(*see(stop, 0.4))  # it has come to rest here
    assert first is not None
    tracks.answered(first, UNSURE)
    for i in range(5):  # the same view of the standing car: the same answer again, not paid
        assert tracks.offer(*see(stop, 0.5 + 0.1 * i)) is None
    assert tracks.counters["held_same_view"] == 5
    crop, s = see(stop, 1.0)
    sharper = tracks.offer(replace(crop, quality=crop.quality * 1.3), s)  # motion blur gone: worth one more
    assert sharper is not None


def test_a_confident_read_ends_the_pass_and_a_new_pass_starts_after_the_gap():
    tracks = gate(pass_gap_s=2.0)
    (c,) = approach(tracks)
    tracks.answered(c, CONFIDENT)
    assert approach(tracks, t0=0.8, n=3) == []  # the same car goes on: nothing more to pay
    gone(tracks, 5.0)
    again = approach(tracks, t0=6.0)
    assert len(again) == 1 and again[0].track_id != c.track_id


# ---------------------------------------------------------------- direction


def test_direction_from_the_width_trend():
    grow = [(0.1 * i, 60 + 6 * i) for i in range(6)]
    shrink = [(0.1 * i, 120 - 6 * i) for i in range(6)]
    jitter = [(0.1 * i, 100 + (3 if i % 2 else -3)) for i in range(10)]
    assert direction_of(grow, 0.5) == APPROACHING
    assert direction_of(shrink, 0.5) == LEAVING
    assert direction_of(jitter, 0.9) == UNKNOWN
    assert direction_of(grow[:2], 0.1) == UNKNOWN  # too few sightings


def test_uploads_carry_the_direction_and_it_stays_known_while_the_car_stands():
    tracks = gate(direction_wait_s=1.0)
    (c,) = approach(tracks, n=6)
    assert c.direction == APPROACHING and tracks.counters["held_direction"] == 2
    tracks.answered(c, CONFIDENT)
    stand = tracks.tracks[0].box
    for i in range(10):
        tracks.offer(*see(stand, 1.0 + 0.1 * i))
    assert tracks.tracks[0].direction == APPROACHING


def test_pay_for_approaching_does_not_pay_for_a_leaving_vehicle_but_reports_it():
    tracks = gate(pay_for="approaching", direction_wait_s=1.0)
    for i in range(10):
        w = 140 - 8 * i
        box = Box(300 - w // 2, 300 - 12 * i, 300 + w // 2, 300 - 12 * i + w // 4)
        assert tracks.offer(*see(box, 0.1 * i)) is None
    assert tracks.counters["held_leaving"] > 0
    (end,) = gone(tracks, 5.0)
    assert end.direction == LEAVING and end.uploads == 0 and "leaving" in end.why


# ---------------------------------------------------------------- queues and pairs


def test_two_vehicles_in_view_at_once_stay_two_passes():
    tracks = gate()
    ids = set()
    for i in range(8):  # two lanes side by side, both approaching
        w = 60 + 6 * i
        items = [see(Box(x - w // 2, 150 + 8 * i, x + w // 2, 150 + 8 * i + w // 4), 0.1 * i, text, seq=i)
                 for x, text in ((200, "AB12 CDE"), (330, "KX52 ODV"))]
        for c in tracks.offer_frame(items):
            ids.add(c.track_id)
            tracks.answered(c, CONFIDENT)
    assert len(ids) == 2 and len(tracks.tracks) == 2


def test_a_second_car_close_behind_the_first_is_a_pass_of_its_own():
    tracks = gate()
    a = Box(200, 200, 300, 225)
    assert tracks.offer(*see(a, 0.0, seq=0)) is not None
    # next frame: the first plate moved a little, a second one appeared a plate width behind it
    items = [see(a.offset(0, 5), 0.1, seq=1), see(a.offset(0, -60), 0.1, "KX52 ODV", seq=1)]
    tracks.offer_frame(items)
    assert len(tracks.tracks) == 2


def test_a_car_waiting_at_the_barrier_is_read_once():
    tracks = gate(static_after_s=2.0, pass_gap_s=2.0)
    (c,) = approach(tracks, answer=CONFIDENT)
    stop = tracks.tracks[0].box
    for i in range(40):  # waits 4 s at the line
        assert tracks.offer(*see(stop, 1.0 + 0.1 * i)) is None
    assert tracks.statics.snapshot(5.0)[0]["state"] == "read"
    away = [Box(0, 0, 100, 50)]  # a pedestrian far from it keeps the detector busy: the car's pass does not age
    for i in range(100):
        tracks.offer_frame([], 5.0 + 0.1 * i, away)
    assert tracks.expire(15.0) == [] and len(tracks.tracks) == 1
    assert tracks.offer(*see(stop, 30.0)) is None  # still that car, still read
    for i in range(1, 6):  # it drives through
        assert tracks.offer(*see(stop.offset(0, -25 * i), 30.0 + 0.1 * i)) is None
    assert tracks.counters["held_done"] >= 5 and len(tracks.statics) == 0 and len(tracks.tracks) == 1


def test_a_read_car_found_again_where_it_waited_after_its_pass_ended_is_not_paid_for():
    tracks = gate(static_after_s=2.0, pass_gap_s=2.0)
    (c,) = approach(tracks, answer=CONFIDENT)
    stop = tracks.tracks[0].box
    for i in range(30):  # waits 3 s at the line: a static object with its read
        tracks.offer(*see(stop, 1.0 + 0.1 * i))
    gone(tracks, 10.0)  # the detector looked there and missed it (hidden by a passing van)
    assert tracks.tracks == []
    assert tracks.offer(*see(stop, 12.0)) is None and tracks.counters["held_static"] >= 1
    for i in range(1, 6):  # it drives through: still the car that was read
        assert tracks.offer(*see(stop.offset(0, -25 * i), 12.0 + 0.1 * i)) is None
    assert len(tracks.statics) == 0


def test_a_pass_ages_only_while_there_is_motion_at_its_place():
    tracks = gate(pass_gap_s=2.0)
    approach(tracks, answer=CONFIDENT)
    for i in range(3):  # it stops at the barrier
        tracks.offer(*see(tracks.tracks[0].box, 0.8 + 0.1 * i))
    for i in range(50):  # 5 s of detector frames with motion elsewhere only
        tracks.offer_frame([], 1.0 + 0.1 * i, [Box(0, 0, 50, 50)])
    assert tracks.expire(6.0) == [] and len(tracks.tracks) == 1
    last = tracks.tracks[0].box
    for i in range(15):  # 1.5 s of motion where it was: not yet
        tracks.offer_frame([], 6.0 + 0.1 * i, [last])
    tracks.expire(7.5)
    assert len(tracks.tracks) == 1
    for i in range(15, 25):  # more than pass_gap_s: it has gone
        tracks.offer_frame([], 6.0 + 0.1 * i, [last])
    tracks.expire(8.5)
    assert tracks.tracks == []


def test_a_plate_last_seen_at_the_frame_edge_has_left_after_the_gap():
    tracks = gate(pass_gap_s=2.0)
    for i in range(6):  # drives to the right, out at the frame edge
        box = Box(400 + 40 * i, 300, 480 + 40 * i, 320)
        c = tracks.offer(*see(box.clamp(W, H), 0.1 * i, whole=box.x2 <= W))
        if c is not None:
            tracks.answered(c, CONFIDENT)
    assert tracks.expire(2.3) == [] and len(tracks.tracks) == 1
    tracks.expire(2.9)  # no detector frame since (nothing moves any more), yet it has gone
    assert tracks.tracks == []


def test_a_fast_plate_is_looked_for_where_its_speed_takes_it():
    tracks = gate()
    xs = [10, 70, 130, 220, 310, 400, 490]  # 1.2 plate widths a frame, then 1.8: beyond the plain reach
    for i, x in enumerate(xs):
        c = tracks.offer(*see(Box(x, 200, x + 50, 215), 0.1 * i))
        if c is not None:
            tracks.answered(c, CONFIDENT)
    assert len(tracks.tracks) == 1


def test_a_still_sign_whose_box_grows_while_a_car_passes_in_front_stays_static():
    tracks = gate(static_after_s=1.0)
    for t in np.arange(0.0, 1.5, 0.1):
        tracks.offer(*see(SIGN, float(t), "PRIVATE", moving=False))
    wider = Box(SIGN.x1, SIGN.y1, SIGN.x2 + 40, SIGN.y2 + 6)  # merged with the car passing in front
    for i in range(5):
        assert tracks.offer(*see(wider, 1.5 + 0.1 * i, "PRIVATE")) is None
    assert len(tracks.statics) == 1 and tracks.counters["held_static"] >= 5


def test_a_stalled_pipeline_does_not_end_a_pass():
    tracks = gate(pass_gap_s=2.0)
    approach(tracks, answer=CONFIDENT)
    tracks.offer_frame([], 5.0)  # one frame after a 4 s stall: counts half a second at most
    assert tracks.expire(5.0) == [] and len(tracks.tracks) == 1


def test_a_car_that_drives_off_fast_stays_its_pass():
    tracks = gate()
    (c,) = approach(tracks, answer=CONFIDENT)
    stop = tracks.tracks[0].box
    # one processed frame 0.4 s later: it moved 2 plate widths (a loaded machine, a quick start)
    assert tracks.offer(*see(stop.offset(2 * stop.width, 0), 1.1)) is None
    assert len(tracks.tracks) == 1 and tracks.counters["held_done"] >= 1


def test_an_unreadable_car_gives_one_unread_end_and_a_read_one_none():
    tracks = gate(max_uploads_per_pass=2)
    sent = approach(tracks, answer=EMPTY)
    assert len(sent) == 2
    (end,) = gone(tracks, 5.0)
    assert end.uploads == 2 and end.direction == APPROACHING and end.why.startswith("no plate read")
    approach(tracks, t0=10.0, text="KX52 ODV", answer=UNSURE)  # text, if unsure: its own event comes from it
    assert gone(tracks, 15.0) == []
    sign = tracks.offer(*see(SIGN, 20.0))  # never moved: not a vehicle, no event
    assert sign is not None
    tracks.answered(sign, EMPTY)
    assert gone(tracks, 25.0) == []
    c = tracks.offer(*see(Box(100, 200, 200, 225), 30.0))  # two frames of something moving: a glimpse
    assert c is not None
    tracks.answered(c, EMPTY)
    tracks.offer(*see(Box(100, 240, 200, 265), 30.1))
    assert tracks.tracks[-1].moved
    assert gone(tracks, 35.0) == []


def test_a_pass_that_ends_with_a_read_in_flight_waits_for_its_answer():
    tracks = gate()
    (c,) = approach(tracks)
    assert gone(tracks, 5.0) == []  # gone from view, answer not back yet
    tracks.answered(c, EMPTY)
    (end,) = tracks.expire(5.1)
    assert end.track_id == c.track_id


def test_a_sign_is_not_dragged_along_by_a_car_passing_in_front_of_it():
    tracks = gate(static_after_s=1.0)
    for t in np.arange(0.0, 1.5, 0.1):
        tracks.offer(*see(SIGN, float(t), "PRIVATE", moving=False))
    assert tracks.statics.snapshot(1.5)[0]["state"] == "unread"
    # the car's body merges with the sign's box, then its plate goes by below, close to that box
    # but more than a plate width from the sign: the sign stays where it is, the plate is the car's
    merged = Box(SIGN.x1 + 50, SIGN.y1, SIGN.x2 + 60, SIGN.y2 + 5)
    assert tracks.offer(*see(merged, 1.6, "CAR BODY")) is None
    plates = [Box(550, 140, 620, 158), Box(560, 160, 632, 178), Box(570, 180, 644, 199)]
    sent = [tracks.offer(*see(b, 1.7 + 0.1 * i, "KX52 ODV")) for i, b in enumerate(plates)]
    sign_track = next(t for t in tracks.tracks if t.static is not None)
    assert all(c is None or c.track_id != sign_track.id for c in sent)
    assert sign_track.box == SIGN and len(tracks.statics) == 1
    assert tracks.offer(*see(SIGN, 2.0, "PRIVATE")) is None  # the sign, where it was: still not paid for


def test_a_plate_coming_out_from_behind_a_nearer_car_waits_until_its_box_is_steady():
    tracks = gate()
    (c,) = approach(tracks, answer=CONFIDENT)  # the first car, read, at the line (plate 116 px)
    front = tracks.tracks[0].box
    # the second car's plate appears beside and behind it, revealed side first: it widens, then
    # keeps its shape as it comes closer
    boxes = [Box(450, 100, 494, 115), Box(450, 102, 523, 121), Box(452, 104, 549, 123), Box(462, 108, 566, 130)]
    sent = []
    for i, b in enumerate(boxes):
        tracks.offer(*see(front, 1.0 + 0.1 * i))  # the first car still stands there
        sent.append(tracks.offer(*see(b, 1.0 + 0.1 * i, "KX52 ODV")))
    assert sent[:3] == [None, None, None] and sent[3] is not None
    assert tracks.counters["held_unsteady"] == 3
    # alone in view, a plate is read at its first sighting (nothing could hide it)
    alone = gate()
    assert alone.offer(*see(boxes[0], 0.0, "KX52 ODV")) is not None


def test_a_car_the_detector_missed_for_a_few_frames_is_found_further_on():
    tracks = gate()
    approach(tracks, answer=CONFIDENT)
    stop = tracks.tracks[0].box
    for i in range(1, 6):  # it pulls away; the detector misses it for half a second (motion blur)
        tracks.offer_frame([], 0.7 + 0.1 * i)
    # found again 2.2 plate widths on: no further than its speed could take it in that time
    assert tracks.offer(*see(stop.offset(int(2.2 * stop.width), 0), 1.3)) is None
    assert len(tracks.tracks) == 1 and tracks.counters["held_done"] >= 1


def test_a_plate_last_seen_driving_has_gone_after_the_gap_even_where_nothing_moves():
    tracks = gate(pass_gap_s=2.0)
    leaving = [Box(230 + 2 * i, 300 - 12 * i, 290 - 2 * i, 315 - 12 * i) for i in range(8)]  # drives away
    for i, b in enumerate(leaving):
        c = tracks.offer(*see(b, 0.1 * i, "KX52 ODV"))
        if c is not None:
            tracks.answered(c, CONFIDENT)
    for i in range(25):  # nothing moves any more: too small to find, gone
        tracks.offer_frame([], 0.8 + 0.1 * i, regions=[])
    tracks.expire(3.0)
    assert tracks.tracks == []
    # the next car's plate comes up where the first one vanished: a pass (and a read) of its own
    assert tracks.offer(*see(leaving[-1].offset(0, -10), 6.0)) is not None


# ---------------------------------------------------------------- one vehicle shows one plate


def test_after_an_empty_answer_the_same_thing_carried_along_is_not_paid_again():
    # a grille taken for a plate as the car comes into view: empty; the car drives on and the same
    # box (same size and shape) comes along with it, each time at a new place: not paid again
    tracks = gate(whole_wait_s=1.0)
    grille = Box(400, 250, 496, 298)
    c = tracks.offer(*see(grille, 0.0, "GRILLE"))
    assert c is not None
    tracks.answered(c, EMPTY)
    for i in range(1, 4):
        assert tracks.offer(*see(grille.offset(2 * i, -28 * i), 0.13 * i, "GRILLE")) is None
    assert tracks.counters["held_same_view"] == 3
    # then the plate comes into view below it, taken for the same pass: not wider, but of another
    # shape, so something new to read
    plate = tracks.offer(*see(Box(465, 258, 575, 282), 0.52))
    assert plate is not None and plate.track_id == c.track_id
    # the plate's own first read is empty too (glare): the grille's empty answer was about something
    # else, so the plate still has its second try (max_uploads_per_pass = 2), after the same-view wait
    tracks.answered(plate, EMPTY)
    again = tracks.offer(*see(Box(470, 210, 580, 234), 1.6))
    assert again is not None and tracks.counters["held_max_uploads"] == 0
    tracks.answered(again, EMPTY)
    assert tracks.offer(*see(Box(470, 190, 580, 214), 2.7)) is None and tracks.counters["held_max_uploads"] == 1


def test_after_an_empty_answer_the_same_view_is_tried_again_after_whole_wait_s():
    tracks = gate(whole_wait_s=1.0)
    box = Box(100, 200, 220, 230)
    c = tracks.offer(*see(box, 0.0))
    assert c is not None
    tracks.answered(c, EMPTY)
    sent = [tracks.offer(*see(box.offset(30 * i, 0), round(0.1 * i, 1))) for i in range(1, 12)]
    assert sent[:9] == [None] * 9 and sent[9] is not None  # at 1.0 s: a second look (lighting, glare)


def _lockstep(tracks: PlateTracks, frames: int, parts: list[tuple[str, callable]], answers: dict[str, str],
              t0: float = 0.0) -> list[str]:
    """Detector frames every 0.1 s with one sighting per (text, box at frame i); uploads are answered
    at once from ``answers`` by text; returns the texts uploaded."""
    sent = []
    for i in range(frames):
        items = [see(box_at(i), round(t0 + 0.1 * i, 1), text, seq=i) for text, box_at in parts if box_at(i) is not None]
        for c in tracks.offer_frame(items):
            text = next(t for t, b in parts if b(i) == c.detection.box)
            sent.append(text)
            tracks.answered(c, answers[text])
    return sent


def _plate(i: int, x: int = 320, w0: int = 100, dy: int = 12, grow: int = 4) -> Box:
    w = w0 + grow * i
    return Box(x - w // 2, 150 + dy * i, x + w // 2, 150 + dy * i + w // 4)


def test_a_detection_moving_with_a_read_plate_is_part_of_its_vehicle():
    # a badge 1.3 plate widths above the plate, moving and growing with it: one vehicle, one read
    def badge(i: int) -> Box:
        p = _plate(i)
        (cx, cy), w = p.centre, p.width
        return Box(int(cx - 0.9 * w), int(cy - 1.1 * w), int(cx - 0.4 * w), int(cy - 0.85 * w))

    tracks = gate()
    sent = _lockstep(tracks, 10, [("AB12 CDE", _plate), ("BADGE", badge)], {"AB12 CDE": CONFIDENT, "BADGE": EMPTY})
    assert sent == ["AB12 CDE"] and tracks.counters["held_companion"] >= 8
    assert gone(tracks, 5.0) == []  # the badge's pass gives no unread event: its vehicle was read


def test_a_pass_with_only_empty_answers_beside_a_read_companion_gives_no_unread_event():
    # the badge comes into view first and is paid for (nothing to tell it from a plate yet); then the
    # plate, moving with it, is read: one vehicle, one event
    def badge(i: int) -> Box:
        p = _plate(i)
        (cx, cy), w = p.centre, p.width
        return Box(int(cx - 0.9 * w), int(cy - 1.1 * w), int(cx - 0.4 * w), int(cy - 0.85 * w))

    tracks = gate()
    sent = _lockstep(tracks, 10, [("BADGE", badge), ("AB12 CDE", lambda i: _plate(i) if i >= 2 else None)],
                     {"AB12 CDE": CONFIDENT, "BADGE": EMPTY})
    assert sent == ["BADGE", "AB12 CDE"]
    assert gone(tracks, 5.0) == [] and tracks.counters["unread_companion"] == 1


def test_two_cars_side_by_side_driving_together_are_both_read():
    # plates three widths apart (two cars touching would be further): never one vehicle, even in lockstep
    tracks = gate()
    beside = [("AB12 CDE", lambda i: _plate(i, x=120)),
              ("KX52 ODV", lambda i: _plate(i, x=120 + 3 * (100 + 4 * i)) if i else None)]
    sent = _lockstep(tracks, 10, beside, {"AB12 CDE": CONFIDENT, "KX52 ODV": CONFIDENT})
    assert sorted(sent) == ["AB12 CDE", "KX52 ODV"] and len(tracks.tracks) == 2


def test_a_car_close_behind_another_is_read():
    # its plate 1.5 widths above the first one's, further away: it moves less in the image and grows
    # less, so the two part at once; it waits for that, then it is read
    tracks = gate()
    behind = [("AB12 CDE", _plate),
              ("KX52 ODV", lambda i: _plate(i, x=380, w0=70, dy=5, grow=1).offset(0, -140) if i else None)]
    sent = _lockstep(tracks, 10, behind, {"AB12 CDE": CONFIDENT, "KX52 ODV": CONFIDENT})
    assert sent == ["AB12 CDE", "KX52 ODV"]


def _grille_then_plate(dx: int, dy: int) -> tuple[PlateTracks, list]:
    """A grille moving up, taken for a plate (empty), lost as the plate comes into view beside it;
    the plate then moves (``dx``, ``dy``) px a frame. Returns the gate and the passes that ended unread."""
    tracks = gate()
    for i in range(4):
        c = tracks.offer(*see(Box(400, 250 - 30 * i, 496, 298 - 30 * i), 0.1 * i, "GRILLE"))
        if c is not None:
            tracks.answered(c, EMPTY)
    plate = Box(415, 300, 615, 340)  # in the next frame the grille is lost, the plate found below it
    for i in range(6):
        c = tracks.offer(*see(plate.offset(dx * i, dy * i), round(0.4 + 0.1 * i, 1)))
        if c is not None:
            tracks.answered(c, CONFIDENT)
    return tracks, gone(tracks, 5.0)


def test_a_box_lost_as_a_plate_is_found_beside_it_going_the_same_way_hands_on_its_vehicle():
    tracks, ended = _grille_then_plate(0, -25)  # up, as the grille went
    assert ended == [] and tracks.counters["unread_companion"] == 1  # one vehicle, its one event: the read


def test_a_plate_found_beside_a_lost_box_going_another_way_is_another_vehicle():
    tracks, ended = _grille_then_plate(-25, 0)  # sideways
    assert len(ended) == 1 and ended[0].why.startswith("no plate read")


def test_a_glimpse_beside_a_standing_car_does_not_take_its_plate_when_it_drives_off():
    # a false detection seen once beside the car waiting at the line, never paid for; seconds later
    # the car drives off fast and its plate, next found, is nearer that glimpse than its own last place
    tracks = gate(pass_gap_s=2.0)
    (c,) = approach(tracks, answer=CONFIDENT)
    stop = tracks.tracks[0].box
    w = stop.width
    glimpse = Box(stop.x1 + int(2.4 * w), stop.y1 - 20, stop.x1 + int(3.2 * w), stop.y1)
    tracks.offer_frame([see(stop, 0.8, seq=80), see(glimpse, 0.8, "GLIMPSE", seq=80)])
    near_car = [stop.offset(0, -2 * stop.height)]  # what moves: only around the car (its driver)
    for i in range(1, 31):  # it waits 3 s; the glimpse is never seen again
        assert tracks.offer_frame([see(stop, round(0.8 + 0.1 * i, 1))], regions=near_car) == []
        tracks.expire(round(0.8 + 0.1 * i, 1))
    for i in range(1, 5):  # it pulls away, blurred: the detector misses it for 0.4 s
        tracks.offer_frame([], round(3.8 + 0.1 * i, 1), regions=near_car)
    off = stop.offset(int(2.3 * w), -8)
    assert tracks.offer(*see(off, 4.3)) is None  # still the car that was read
    assert [t.id for t in tracks.tracks if t.box == off] == [c.track_id]
