"""One detector shared by every camera: round-robin turns (a busy camera cannot starve another),
one request per camera (never a backlog), thread safety, close order, the wiring and /status."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

from agent import detect, wiring
from agent.config import DetectorConfig, parse
from agent.detect import CameraDetector, SharedDetectors, instances
from agent.detect.shared import Turns
from agent.errors import DetectorError
from agent.health import Report
from agent.motion import MotionGate
from agent.pipeline import CameraPipeline
from agent.types import Frame

WAIT_S = 10.0  # generous: the machine may be loaded; each wait ends on the condition it asserts


def until(cond: Any, what: str) -> None:
    ev = threading.Event()
    for _ in range(int(WAIT_S / 0.005)):
        if cond():
            return
        ev.wait(0.005)
    raise AssertionError(f"timed out waiting for {what}")


class FakeModel:
    """A shared model that records who ran it (the image's first pixel is the caller's mark) and,
    when ``gated``, holds each run until the test lets it go."""

    def __init__(self, gated: bool = False) -> None:
        self.calls: list[int] = []
        self.gate = threading.Semaphore(0) if gated else None
        self.inside = 0
        self.most_inside = 0
        self.closed = 0
        self.closed_while_inside = False
        self._lock = threading.Lock()

    def run(self, image: Any) -> list[Any]:
        with self._lock:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
            self.calls.append(int(image[0, 0, 0]))
        if self.gate is not None:
            assert self.gate.acquire(timeout=WAIT_S), "the test never let the model run"
        with self._lock:
            self.inside -= 1
        return []

    def detect(self, image: Any, roi: Any = None) -> list[Any]:
        return self.run(image)

    def for_camera(self, cfg: DetectorConfig) -> FakeModel:
        return self  # the fake keeps no per-camera settings

    def close(self) -> None:
        self.closed += 1
        self.closed_while_inside |= self.inside > 0


def mark(n: int) -> Any:
    return np.full((2, 2, 3), n, np.uint8)


# ------------------------------------------------------------ turns: pure ordering


def test_turns_go_round_robin_from_the_camera_served_last() -> None:
    t = Turns(["a", "b", "c"], slots=1)
    t.request("a")
    assert t.granted == {"a": 0}
    t.request("c")  # c asked first, but b comes after a in the round
    t.request("b")
    t.release("a")
    assert t.granted == {"b": 0}
    t.request("a")
    t.release("b")
    assert t.granted == {"c": 0}
    t.release("c")
    assert t.granted == {"a": 0} and not t.waiting


def test_a_busy_camera_cannot_starve_another() -> None:
    """The tree in the wind asks again the moment it is done; the car still gets every other turn."""
    t = Turns(["tree", "car"], slots=1)
    served = []
    t.request("tree")
    t.request("car")
    for _ in range(6):
        (cam,) = t.granted
        served.append(cam)
        t.release(cam)
        t.request(cam)  # both always want the detector again
    assert served == ["tree", "car"] * 3


def test_turns_with_a_pool_grant_each_free_slot() -> None:
    t = Turns(["a", "b", "c"], slots=2)
    for cam in "abc":
        t.request(cam)
    assert set(t.granted) == {"a", "b"} and t.waiting == {"c"}
    slot = t.release("a")
    assert t.granted["c"] == slot


def test_a_camera_has_at_most_one_request() -> None:
    t = Turns(["a", "b"], slots=1)
    t.request("a")
    t.request("b")
    with pytest.raises(DetectorError, match="already asked"):
        t.request("b")
    with pytest.raises(DetectorError, match="already asked"):
        t.request("a")


def test_instances_by_cores() -> None:
    assert instances(DetectorConfig()) == 1
    assert instances(DetectorConfig(instances=3)) == 3
    assert instances(DetectorConfig(instances=0, num_threads=2), cpu_count=4) == 2
    assert instances(DetectorConfig(instances=0, num_threads=4), cpu_count=2) == 1


# ------------------------------------------------------------ threads


def test_a_waiting_camera_runs_before_the_busy_one_runs_again() -> None:
    model = FakeModel(gated=True)
    pool = SharedDetectors([model], ["tree", "car"])
    tree, car = pool.camera("tree", DetectorConfig()), pool.camera("car", DetectorConfig())
    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            try:
                tree.detect(mark(1))
            except DetectorError:
                return

    t = threading.Thread(target=busy, daemon=True)
    t.start()
    until(lambda: model.calls == [1], "the tree's first run")
    done = threading.Event()
    c = threading.Thread(target=lambda: (car.detect(mark(2)), done.set()), daemon=True)
    c.start()
    until(lambda: pool.stats()["waiting"] == ["car"], "the car waiting for its turn")
    model.gate.release()  # the tree's run ends: the car is next, whatever the tree does now
    until(lambda: len(model.calls) == 2, "the next run")
    assert model.calls == [1, 2]
    model.gate.release()
    assert done.wait(WAIT_S)
    stop.set()
    pool.close()
    for _ in range(3):
        model.gate.release()
    t.join(WAIT_S)
    assert car.stats()["detector_calls"] == 1


def test_many_cameras_never_run_the_model_at_once() -> None:
    model = FakeModel()
    cams = [f"c{i}" for i in range(4)]
    pool = SharedDetectors([model], cams)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        d = pool.camera(cams[n], DetectorConfig())
        try:
            for _ in range(50):
                d.detect(mark(n))
        except BaseException as err:  # noqa: BLE001 - reported by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT_S * 3)
    assert not errors and len(model.calls) == 200 and model.most_inside == 1
    assert sorted(model.calls.count(n) for n in range(4)) == [50] * 4
    assert sum(int(pool.stats(c)["detector_calls"]) for c in cams) == 200  # type: ignore[call-overload]


def test_close_waits_for_the_model_in_use_and_refuses_waiters() -> None:
    model = FakeModel(gated=True)
    pool = SharedDetectors([model], ["a", "b"])
    a, b = pool.camera("a", DetectorConfig()), pool.camera("b", DetectorConfig())
    results: dict[str, object] = {}

    def call(name: str, d: CameraDetector, n: int) -> None:
        try:
            results[name] = d.detect(mark(n))
        except DetectorError as err:
            results[name] = err

    ta = threading.Thread(target=call, args=("a", a, 1))
    ta.start()
    until(lambda: model.calls == [1], "a running")
    tb = threading.Thread(target=call, args=("b", b, 2))
    tb.start()
    until(lambda: pool.stats()["waiting"] == ["b"], "b waiting")
    a.close()  # a camera's close leaves the shared model alone
    assert model.closed == 0
    pool.close()
    tb.join(WAIT_S)
    assert isinstance(results["b"], DetectorError)  # the waiter is refused, not left hanging
    assert model.closed == 0  # still in use by a: closed when a gives it back
    model.gate.release()
    ta.join(WAIT_S)
    assert results["a"] == [] and model.closed == 1 and not model.closed_while_inside
    pool.close()
    assert model.closed == 1  # idempotent
    with pytest.raises(DetectorError):
        b.detect(mark(2))


def test_an_unknown_camera_is_refused() -> None:
    pool = SharedDetectors([FakeModel()], ["a"])
    with pytest.raises(DetectorError, match="not registered"):
        pool.camera("b", DetectorConfig())


# ------------------------------------------------------------ the pipeline: newest frame, no backlog


class Slot:
    """The capture's latest-frame slot: ``latest`` gives the newest frame after ``after_seq``."""

    def __init__(self) -> None:
        self.frame: Frame | None = None
        self.cond = threading.Condition()
        self.ended = False

    def put(self, seq: int) -> None:
        img = np.zeros((36, 64, 3), np.uint8)
        img[0, 0, 0] = seq
        with self.cond:
            self.frame = Frame("a", img, seq, 1000.0 + seq, seq * 0.2)
            self.cond.notify_all()

    def latest(self, after_seq: int, timeout: float) -> Frame | None:
        with self.cond:
            self.cond.wait_for(lambda: self.frame is not None and self.frame.seq > after_seq, timeout)
            f = self.frame
            return f if f is not None and f.seq > after_seq else None


def test_a_camera_waiting_for_its_turn_detects_its_newest_frame_next() -> None:
    model = FakeModel()
    pool = SharedDetectors([model], ["a", "b"])
    cam = parse({"cameras": [{"id": "a", "source": "x.mp4", "motion": {"enabled": False}}]}).cameras[0]
    slot, stop = Slot(), threading.Event()
    pipe = CameraPipeline(cam, slot, MotionGate(cam.motion, cam.zones), pool.camera("a", cam.detector),
                          None, lambda c: True, stop)  # type: ignore[arg-type]
    pool.acquire("b")  # another camera holds the model
    t = threading.Thread(target=pipe.run, daemon=True)
    t.start()
    slot.put(1)
    until(lambda: pool.stats()["waiting"] == ["a"], "camera a waiting with frame 1")
    for seq in range(2, 9):  # frames arrive while it waits: none of them queues
        slot.put(seq)
    pool.release("b", 0.0)
    until(lambda: pipe.last_seq == 8, "camera a done with its newest frame")
    stop.set()
    t.join(WAIT_S)
    assert model.calls == [1, 8]  # the frame it waited with, then the newest: frames 2-7 never queued
    pool.close()


# ------------------------------------------------------------ wiring and /status


def test_the_wiring_loads_one_model_for_every_camera(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[FakeModel] = []

    def factory(cfg: DetectorConfig) -> FakeModel:
        made.append(FakeModel())
        return made[-1]

    monkeypatch.setitem(detect.DETECTORS, "tflite", factory)
    cfg = parse({"cameras": [{"id": c, "source": "/dev/null", "type": "file"} for c in ("a", "b", "c")],
                 "storage": {"state_dir": str(tmp_path)}, "status": {"enabled": False}})
    closers: wiring.Closers = []
    parts = wiring.build(cfg, threading.Event(), closers)
    try:
        assert len(made) == 1 and parts.detectors is not None and parts.detectors.models == made
        parts.camera("b").pipeline.detector.detect(mark(7))  # as the pipeline calls it
        doc = wiring.build_status(cfg, Report(parts).stats, lambda: "").board.document()
        assert doc["cameras"]["b"]["detector"]["calls"] == 1
        assert doc["cameras"]["a"]["detector"]["calls"] == 0
        assert doc["detector"]["models"] == 1
        assert doc["cameras"]["b"]["stages"]["detector"]["calls"] == 1  # the stage time, wait included
        assert "detector" not in doc["cameras"]["a"]["stages"]
        names = [n for n, _ in closers]
        # the cameras' views close before the shared model
        assert names.index(wiring.DETECTOR) < names.index("camera:a/detector")
    finally:
        for _, close in reversed(closers):
            close()
    assert made[0].closed == 1
