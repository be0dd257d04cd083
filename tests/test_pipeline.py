"""Pipeline stages 2-4 with hand-written fakes for the seams: frame slot, detector, cropper."""

from __future__ import annotations

import threading

import numpy as np

from agent.config import UploadConfig, parse
from agent.motion import MotionGate
from agent.pipeline import CameraPipeline, Dispatcher
from agent.track import PlateTracks
from agent.types import Box, Decision, Detection, Frame, PlateCrop, PlateRead

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
                         b"\xff\xd8jpeg", 10.0, self.quality)


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
    pipe = make(camera(zones=zone), FakeDetector(Box(300, 100, 400, 130)), sent)  # centre above the zone
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


def test_unsure_answer_allows_one_better_upload_then_stops():
    tracks = PlateTracks(UploadConfig(max_uploads_per_pass=2, min_quality_gain=1.25))
    box = Box(100, 100, 200, 130)
    first = crop_of(box, 1.0)
    first = tracks.offer(first, 0.0)
    assert first is not None
    assert not tracks.offer(crop_of(box, 5.0), 0.1)  # in flight
    tracks.answered(first, confident=False)
    assert not tracks.offer(crop_of(box.offset(5, 0), 1.1), 0.2)  # not better enough
    second = tracks.offer(crop_of(box.offset(10, 0), 2.0), 0.3)
    assert second is not None and second.track_id == first.track_id
    tracks.answered(second, confident=False)
    assert not tracks.offer(crop_of(box, 9.0), 0.4)  # max_uploads_per_pass reached


def test_confident_answer_ends_uploads_and_a_new_pass_starts_after_the_gap():
    tracks = PlateTracks(UploadConfig(pass_gap_s=2.0))
    box = Box(100, 100, 200, 130)
    c = tracks.offer(crop_of(box), 0.0)
    assert c is not None
    tracks.answered(c, confident=True)
    assert not tracks.offer(crop_of(box, 10.0), 1.0)
    tracks.expire(3.5)
    again = tracks.offer(crop_of(box), 3.6)  # the car came back: a new pass
    assert again is not None and again.track_id != c.track_id


def test_two_plates_far_apart_are_two_passes():
    tracks = PlateTracks(UploadConfig())
    a = tracks.offer(crop_of(Box(100, 100, 200, 130)), 0.0)
    b = tracks.offer(crop_of(Box(500, 300, 600, 330)), 0.0)
    assert a is not None and b is not None and a.track_id != b.track_id
    assert len(tracks.tracks) == 2


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
                      outcomes={"gate": lambda c, ok: answers.append(ok)}, min_score=0.7)
    box = Box(0, 0, 10, 10)
    crop = crop_of(box)
    disp.answer(crop, [PlateRead("gate", "AB12CDE", 0.9, 0.9, box, 0.0, 0.0)])
    assert order == ["relay", "mqtt", "webhook"]
    assert answers == [True] and disp.counters["sink_errors"] == 1 and disp.counters["events"] == 1
    disp.answer(crop, [PlateRead("gate", "AB12CDE", 0.3, 0.9, box, 0.0, 0.0)])
    disp.answer(crop, [])
    assert answers == [True, False, False]


def test_dispatcher_hands_each_outcome_to_its_own_cameras_upload_gate():
    got: dict[str, list[bool]] = {"gate": [], "side": []}
    disp = Dispatcher(OneEventDecider(), [], outcomes={
        "gate": lambda c, ok: got["gate"].append(ok), "side": lambda c, ok: got["side"].append(ok)})
    box = Box(0, 0, 10, 10)
    disp.answer(crop_of(box, cam="side"), [])
    disp.answer(crop_of(box, cam="other"), [])  # a camera without an upload gate: the answer still counts
    assert got == {"gate": [], "side": [False]}


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
