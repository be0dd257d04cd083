"""Pipeline stages 2-4 with hand-written fakes for the seams: frame slot, detector, cropper."""

from __future__ import annotations

import dataclasses
import threading

import cv2
import numpy as np
import pytest

from agent.config import parse
from agent.motion import MotionGate
from agent.pipeline import CameraPipeline, Dispatcher
from agent.status import StatusBoard
from agent.types import Box, Decision, Detection, Frame, Motion, PlateCrop, PlateRead

W, H = 640, 360


def crop_of(box: Box, quality: float = 1.0, cam: str = "gate") -> PlateCrop:
    return PlateCrop(cam, 0, 0.0, 0.0, Detection(box, 0.9), box, b"jpeg", 1.0, quality)


class FakeDetector:
    def __init__(self, box: Box | None):
        self.box = box
        self.calls: list[Box | None] = []

    def detect(self, image, roi=None):
        self.calls.append(roi)
        return [Detection(self.box, 0.8)] if self.box else []


class FakeCropper:
    def __init__(self):
        self.quality = 1.0

    def crop(self, frame, det):
        return PlateCrop(frame.camera_id, frame.seq, frame.wall_time, frame.mono_time, det, det.box,
                         b"", 500.0, self.quality)  # a sharp plate

    def encode(self, crop):
        return dataclasses.replace(crop, jpeg=b"\xff\xd8jpeg")


def camera(**over):
    cam = {"id": "gate", "source": "x.mp4", "fps_max": 10.0, **over}
    return parse({"cameras": [cam]}).cameras[0]


def make(cam, detector, submitted):
    return CameraPipeline(cam, None, MotionGate(cam.motion, cam.zones), detector, FakeCropper(),
                          lambda c: submitted.append(c) or True, threading.Event())


def frames(n, moving_from=5, fps=10.0):
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        img = np.clip(rng.normal(90, 3, (H, W, 3)), 0, 255).astype(np.uint8)
        if i >= moving_from:
            x = 100 + 15 * (i - moving_from)
            img[150:260, x:x + 160] = 220
        out.append(Frame("gate", img, i, 1000.0 + i / fps, i / fps))
    return out


def test_still_scene_never_reaches_the_detector():
    det = FakeDetector(Box(300, 200, 400, 230))
    sent: list[PlateCrop] = []
    pipe = make(camera(), det, sent)
    for f in frames(30, moving_from=999):
        pipe.step(f)
    assert det.calls == [] and sent == []
    assert pipe.counters["frames"] == 15 and pipe.counters["motion_frames"] == 0  # idle rate: 5 of 10 fps


def test_motion_runs_detector_on_the_region_and_uploads_once_per_pass():
    det = FakeDetector(Box(300, 200, 400, 230))
    sent: list[PlateCrop] = []
    pipe = make(camera(), det, sent)
    for f in frames(25):
        pipe.step(f)
    assert det.calls, "motion should wake the detector"
    assert all(r is not None and r.area < W * H for r in det.calls)  # ROI, not the full frame
    assert len(sent) == 1  # the read is in flight: no second paid upload
    assert pipe.counters["uploads"] == 1 and pipe.counters["detections"] == len(det.calls)


def test_fps_cap_skips_frames():
    pipe = make(camera(fps_max=5.0), FakeDetector(None), [])
    for f in frames(20, moving_from=999, fps=20.0):
        pipe.step(f)
    assert pipe.counters["frames"] == 5 and pipe.counters["frames_skipped"] == 15


def test_idle_rate_until_something_moves_then_full_rate():
    pipe = make(camera(fps_max=10.0, idle_fps_max=5.0), FakeDetector(None), [])
    clip = frames(40, moving_from=20, fps=10.0)
    for f in clip[:20]:
        pipe.step(f)
    assert pipe.counters["frames"] == 10  # still: every other frame
    for f in clip[20:]:
        pipe.step(f)
    # moving: every frame from the first one that saw the motion on
    assert pipe.counters["frames"] >= 10 + 18 and pipe.counters["motion_frames"] >= 18


def test_zoned_out_plates_are_not_uploaded():
    sent: list[PlateCrop] = []
    zone = [{"kind": "exclude", "polygon": [[0.4, 0.5], [0.7, 0.5], [0.7, 0.7], [0.4, 0.7]]}]
    pipe = make(camera(zones=zone), FakeDetector(Box(300, 200, 400, 230)), sent)
    for f in frames(15):
        pipe.step(f)
    assert sent == [] and pipe.counters["detections_zoned_out"] > 0
    # centre above the zone, on the moving blob (only what moves counts)
    pipe = make(camera(zones=zone), FakeDetector(Box(300, 150, 400, 175)), sent)
    for f in frames(15):
        pipe.step(f)
    assert len(sent) == 1


def test_plate_width_and_roi_limits_are_the_detectors_alone():
    """The detector applies min_plate_width_px, roi and roi_max_fraction; the pipeline hands it every
    motion region and every box it returns goes on (a second copy of those rules is a future bug)."""
    sent: list[PlateCrop] = []
    det = FakeDetector(Box(300, 200, 320, 210))  # 20 px < min_plate_width_px 40
    pipe = make(camera(detector={"roi": False}), det, sent)
    for f in frames(15):
        pipe.step(f)
    assert len(sent) == 1 and pipe.counters["detections"] == len(det.calls)
    assert det.calls and all(r is not None for r in det.calls)


class RecordingSink:
    def __init__(self, order, name, fail=False):
        self.order, self.name, self.fail = order, name, fail

    def send(self, d):
        self.order.append(self.name)
        if self.fail:
            raise RuntimeError("boom")


class OneEventDecider:
    def observe(self, read):
        return [Decision("e1", "p1", "new", read.camera_id, read.plate, read, "open", "", "", False, 0.0)]

    def expire(self, everything=False):
        return []


def test_dispatcher_serves_sinks_in_order_and_survives_a_broken_one():
    order: list[str] = []
    answers = []
    disp = Dispatcher(OneEventDecider(), [RecordingSink(order, "relay"), RecordingSink(order, "mqtt", fail=True),
                                          RecordingSink(order, "webhook")],
                      outcomes={"gate": lambda c, outcome: answers.append(outcome)}, min_score=0.7)
    box = Box(0, 0, 10, 10)
    crop = crop_of(box)
    disp.answer(crop, [PlateRead("gate", "AB12CDE", 0.9, 0.9, box, 0.0, 0.0)])
    assert order == ["relay", "mqtt", "webhook"]
    assert answers == ["confident"] and disp.counters["sink_errors"] == 1 and disp.counters["events"] == 1
    disp.answer(crop, [PlateRead("gate", "AB12CDE", 0.3, 0.9, box, 0.0, 0.0)])
    disp.answer(crop, [])
    disp.answer(crop, None)
    assert answers == ["confident", "unsure", "empty", "failed"]


def test_dispatcher_hands_each_outcome_to_its_own_cameras_upload_gate():
    got: dict[str, list[str]] = {"gate": [], "side": []}
    disp = Dispatcher(OneEventDecider(), [], outcomes={
        "gate": lambda c, ok: got["gate"].append(ok), "side": lambda c, ok: got["side"].append(ok)})
    box = Box(0, 0, 10, 10)
    disp.answer(crop_of(box, cam="side"), [])
    disp.answer(crop_of(box, cam="other"), [])  # a camera without an upload gate: the answer still counts
    assert got == {"gate": [], "side": ["empty"]}


def test_a_refused_upload_frees_the_pass_through_the_outcome_route():
    """The reader refuses the first crop (queue full): the pass is not left waiting for an answer
    that never comes, so a clearly better crop of the same pass is uploaded later."""
    det = FakeDetector(Box(300, 200, 400, 230))
    accepted: list[PlateCrop] = []
    offered: list[PlateCrop] = []

    def submit(crop: PlateCrop) -> bool:
        offered.append(crop)
        if len(offered) == 1:
            return False
        accepted.append(crop)
        return True

    cam = camera()
    pipe = CameraPipeline(cam, None, MotionGate(cam.motion, cam.zones), det, cropper := FakeCropper(), submit,
                          threading.Event())
    for f in frames(25):
        if offered:
            cropper.quality = 10.0  # every crop after the refused one is clearly better
        pipe.step(f)
    assert pipe.counters["drops"] == 1 and pipe.counters["uploads"] == 1
    assert len(accepted) == 1 and accepted[0].track_id == offered[0].track_id  # the same pass


# ---------------------------------------------------------------- the upload gate through the real pipeline

SIGN = Box(470, 40, 590, 70)


def gate_scene(cars: int = 2, fps: float = 10.0):
    """Drawn frames: a plate-like sign on the wall all along; cars whose plates enter cut at the left
    edge, grow and drive to the stop line, wait, then leave to the right. Yields (frame, plate boxes)."""
    t = 0
    for car in range(cars):
        path = [(-60 + 25 * i, 100 + 6 * i, 100 + 3 * i) for i in range(16)]  # x1, width, y1: approaching
        path += [path[-1]] * 20  # waits at the line
        path += [(path[-1][0] + 40 * i, path[-1][1], path[-1][2]) for i in range(1, 12)]  # drives off
        path += [None] * 30  # empty road
        for step in path:
            img = np.full((H, W, 3), 95, np.uint8)
            _plate(img, SIGN, "PRIVATE")
            boxes = [SIGN]
            if step is not None:
                x1, w, y1 = step
                box = Box(x1, y1, x1 + w, y1 + w // 4)
                cv2.rectangle(img, (box.x1 - 40, box.y1 - 60), (box.x2 + 40, box.y2 + 20), (40, 40, 160), -1)
                _plate(img, box, f"CAR{car}X")
                clamped = Box(max(0, box.x1), box.y1, min(W, box.x2), box.y2)
                if clamped.width > 0:
                    boxes.append(clamped)
            yield Frame("gate", img, t, 1000.0 + t / fps, t / fps), boxes
            t += 1


def _plate(img, box: Box, text: str) -> None:
    cv2.rectangle(img, (box.x1, box.y1), (box.x2 - 1, box.y2 - 1), (235, 235, 235), -1)
    cv2.putText(img, text, (box.x1 + 6, box.y2 - 7), cv2.FONT_HERSHEY_SIMPLEX, box.width / 200, (15, 15, 15), 2)


class SceneDetector:
    """Finds every plate the scene drew in the frame it is given (set before each step)."""

    def __init__(self):
        self.boxes: list[Box] = []

    def detect(self, image, roi=None):
        return [Detection(b, 0.6) for b in self.boxes if b.width >= 40]  # min_plate_width_px, as the detector


@pytest.mark.parametrize("motion", [True, False])
def test_the_gate_pays_once_per_car_and_never_again_for_the_sign(motion):
    from agent.crop import Cropper

    cam = camera(motion={"enabled": motion}, detector={"roi": False}, upload={"direction_wait_s": 0.5})
    det, sent, ends = SceneDetector(), [], []
    pipe = CameraPipeline(cam, None, MotionGate(cam.motion, cam.zones), det, Cropper(cam.crop),
                          lambda c: sent.append(c) or True, threading.Event(), on_unread=ends.append)
    answered = 0
    for frame, boxes in gate_scene():
        det.boxes = boxes
        pipe.step(frame)
        for crop in sent[answered:]:  # a reader that judges the image: a cut or sign crop has no plate
            whole = crop.detection.box.x1 > 0 and crop.detection.box != SIGN
            pipe.answered(crop, "confident" if whole else "empty")
        answered = len(sent)
    on_sign = [c for c in sent if c.detection.box == SIGN]
    on_cars = [c for c in sent if c.detection.box != SIGN]
    assert len(on_sign) <= 1  # read at most once, then a static object ("not a plate")
    assert len(on_cars) == 2 and len({c.track_id for c in on_cars}) == 2  # one paid read per car
    assert all(c.detection.box.x1 > 0 for c in on_cars)  # never the cut plate at the edge
    assert all(c.direction == "approaching" for c in on_cars)  # known after a few frames, then read at once
    assert all(c.frame_seq % 77 < 15 for c in on_cars)  # before the car reached the line (frame 15 of its 77)
    assert ends == []  # every car was read
    assert pipe.stats()["held_cut"] > 0
    if not motion:  # the sign counts as "in motion" on every frame: the static rules alone hold it
        assert len(on_sign) == 1 and pipe.stats()["static_objects"][0]["state"] == "not_a_plate"
    else:  # no motion where the sign is: not a vehicle, never paid for
        assert on_sign == [] and pipe.stats()["held_not_moving"] > 0
    # /status lists the static objects and why crops were held back
    doc = StatusBoard(lambda: {"cameras": {"gate": pipe.stats()}}, frame_timeout_s={}).document()["cameras"]["gate"]
    assert [o["state"] for o in doc["static_objects"]] == ["not_a_plate" if on_sign else "unread"]
    assert doc["static_objects"][0]["box"] == SIGN.as_dict() and doc["held"]["static"] > 50
    assert doc["uploads"] == len(sent) and doc["unread_passes"] == 0
    assert sent and all(c.jpeg.startswith(b"\xff\xd8") for c in sent)  # what is sent is encoded


def test_only_the_crops_the_gate_sends_are_encoded_to_jpeg():
    from agent.crop import Cropper

    class CountingCropper(Cropper):
        encoded = 0

        def encode(self, crop):
            CountingCropper.encoded += 1
            return super().encode(crop)

    cam = camera(motion={"enabled": False}, detector={"roi": False})
    det, sent = SceneDetector(), []
    pipe = CameraPipeline(cam, None, MotionGate(cam.motion, cam.zones), det, CountingCropper(cam.crop),
                          lambda c: sent.append(c) or True, threading.Event())
    for frame, boxes in gate_scene():
        det.boxes = boxes
        pipe.step(frame)
    assert pipe.stats()["crops"] > 3 * len(sent) > 0  # the gate held most detections back...
    assert CountingCropper.encoded == len(sent)  # ...and none of those was encoded


class ScriptedMotion:
    """The motion gate's answers, frame by frame: moving while ``moving(seq)``, everywhere."""

    def __init__(self, moving):
        self.moving = moving

    def update(self, image, now=None):
        return Motion(True, (Box(0, 0, W, H),), 0.5) if self.moving(self._seq) else Motion(False)


class ScriptedDetector:
    def __init__(self, boxes):
        self.boxes = boxes  # frame seq -> box
        self.seq = 0

    def detect(self, image, roi=None):
        box = self.boxes.get(self.seq)
        return [Detection(box, 0.8)] if box else []


def test_a_plate_last_seen_driving_has_gone_once_nothing_moves_and_the_next_car_there_is_paid_for():
    # a car drives away and is read; the detector loses it (too small) and soon nothing moves at all:
    # the next car coming up where it vanished is a pass, and a read, of its own
    away = {i: Box(300 + i, 300 - 15 * i, 400 - i, 322 - 15 * i) for i in range(10)}
    back = {i: Box(309, 170 + 12 * (i - 80), 391, 188 + 12 * (i - 80)) for i in range(80, 86)}  # the next car
    det = ScriptedDetector({**away, **back})
    motion = ScriptedMotion(lambda seq: seq < 13 or seq >= 80)
    sent: list[PlateCrop] = []
    cam = camera(fps_max=10.0, idle_fps_max=5.0)
    pipe = CameraPipeline(cam, None, motion, det, FakeCropper(), lambda c: sent.append(c) or True,  # type: ignore[arg-type]
                          threading.Event())
    for f in frames(90, moving_from=999):
        motion._seq = det.seq = f.seq
        for c in pipe.step(f):
            pipe.answered(c, "confident")
    assert len(sent) == 2 and sent[0].track_id != sent[1].track_id


class IdleRecorder:
    def __init__(self) -> None:
        self.calls: list[bool] = []

    def set_idle(self, idle: bool) -> None:
        self.calls.append(idle)


def test_the_source_is_told_idle_once_the_gate_is_quiet_and_woken_by_motion():
    idle = IdleRecorder()
    cam = camera(fps_max=10.0, idle_fps_max=10.0)
    pipe = CameraPipeline(cam, None, MotionGate(cam.motion, cam.zones), FakeDetector(None), FakeCropper(),
                          lambda c: True, threading.Event(), idle=idle)
    clip = frames(100, moving_from=10, fps=10.0)  # still for 1 s, then a block crosses the frame (gone at 4.6 s)
    told: list[tuple[float, bool]] = []
    for f in clip:
        pipe.step(f)
        told += [(f.mono_time, v) for v in idle.calls[len(told):]]
    assert [v for _, v in told[:6]] == [True] * 6  # frames 4-9: the first and the warm-up frames are not
    assert told[0][0] == pytest.approx(0.4)
    woken = next(t for t, v in told if not v)
    assert woken == pytest.approx(1.0)  # the frame the block appears in
    back_idle = next(t for t, v in told if v and t > woken)
    assert not any(v for t, v in told if woken <= t < back_idle)
    # idle again only once the gate has seen nothing for its hold time: the block's last frame is at 4.5 s
    assert back_idle >= 4.5 + cam.motion.hold_s - 0.05 and not pipe._moving
    assert all(v for t, v in told if t >= back_idle)
