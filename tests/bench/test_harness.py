"""The benchmark harness's own pieces, checked for correctness only (speed is measured by
``python -m tests.bench.run``, never asserted here): scene ground truth, frame log, scoring, table."""

from __future__ import annotations

from pathlib import Path

from agent.events import iso
from agent.tools.scene import SceneSpec, VehicleTruth, plate_texts, render
from tests.bench.clip import FrameLog
from tests.bench.costs import cost_table, stage_costs
from tests.bench.e2e import Call, score_agent, score_naive, vehicle_at
from tests.bench.run import bench_scene, table

FPS = 15.0


def test_plates_are_far_enough_apart_to_be_separate_passes():
    plates = plate_texts(40)
    assert len(set(plates)) == 40
    for i, a in enumerate(plates):
        for b in plates[i + 1:]:
            assert sum(x != y for x, y in zip(a, b, strict=True)) >= 4


def test_ground_truth_orders_the_frames_of_each_vehicle_and_counts_the_tail():
    spec = SceneSpec(plates=("AB12 CDE", "XY34 ZZZ"), approach_scale=0.1, tail_s=1.0, width=640, height=360)
    frames, truths, total = render(spec)
    for v in truths:
        assert v.enter_frame < v.readable_frame < v.stop_frame < v.leave_frame < v.exit_frame
    assert truths[1].enter_frame - truths[0].exit_frame == round(spec.gap_s * spec.fps)
    assert total == truths[-1].exit_frame + round((spec.gap_s + spec.tail_s) * spec.fps)
    assert sum(1 for _ in frames) == total


def test_bench_scene_has_every_distractor_on():
    spec = bench_scene(3)
    assert (spec.width, spec.height, spec.fps) == (1280, 720, 15.0)
    assert spec.clock_overlay and spec.pedestrian and spec.brightness_drift > 0 and spec.noise_sigma > 0
    assert 1.5 <= spec.stop_s <= 2.5 and spec.gap_s > 0


def test_frame_log_ignores_a_replay_after_the_end(tmp_path: Path):
    log = tmp_path / "frames.log"
    log.write_text("0 100.0\n1 100.066\n1 100.07\n2 100.133\nEOS 100.2\n0 101.0\n")
    frames = FrameLog(log).load()
    assert frames.sent == {0: 100.0, 1: 100.066, 2: 100.133} and frames.repeats == 1
    assert frames.ended()
    assert frames.frame_at(100.07) == 1 and frames.frame_at(99.0) is None and frames.frame_at(500.0) == 2


def truth(plate: str, enter: int) -> VehicleTruth:
    return VehicleTruth(plate, enter, enter + 30, enter + 60, enter + 80, readable_frame=enter + 3)


def sent_log(tmp_path: Path, n: int) -> FrameLog:
    log = tmp_path / "frames.log"
    log.write_text("".join(f"{i} {1000 + i / FPS:.6f}\n" for i in range(n)))
    return FrameLog(log).load()


def event(at_frame_s: float, plate: str, kind: str = "new", cam: str = "cam1") -> tuple[float, dict]:
    return at_frame_s, {"type": kind, "plate": plate, "camera_id": cam, "pass_id": plate + cam,
                        "read": {"captured_at": iso(at_frame_s - 0.05)}}


def test_agent_score_counts_reads_events_calls_and_latency_from_the_stop_line(tmp_path: Path):
    truths = [truth("AB12 CDE", 10), truth("XY34 ZZZ", 200)]
    frames = sent_log(tmp_path, 400)
    stop0 = frames.sent[40]
    assert vehicle_at(truths, 5) is None and vehicle_at(truths, 10) == 0 and vehicle_at(truths, 90) is None
    calls = [Call("cam1", 0.0, 30, 0), Call("cam1", 0.0, 35, 0), Call("cam1", 0.0, 150, None)]
    events = [event(stop0 + 0.5, "AB12CDE"), event(stop0 + 2.0, "AB12CDE", "update"), event(stop0, "ZZ")]
    result = score_agent(truths, frames, calls, events, relay_on=[stop0 + 0.4],
                         mqtt_got=[(stop0 + 0.45, {"camera_id": "cam1", "pass_id": "AB12CDEcam1"})], cameras=1)
    assert (result["vehicles"], result["read"], result["read_pct"]) == (2, 1, 50.0)
    assert (result["events_new"], result["events_update"], result["events_stray"]) == (1, 1, 1)
    assert (result["calls"], result["calls_per_vehicle"], result["gap_calls"]) == (3, 1.5, 1)
    lat = result["latency_s"]
    assert abs(lat["event"]["p50"] - 0.5) < 1e-3 and abs(lat["relay"]["p50"] - 0.4) < 1e-3
    assert abs(lat["mqtt"]["p50"] - 0.45) < 1e-3 and abs(lat["capture_to_event"]["p50"] - 0.05) < 2e-3
    assert abs(lat["event_from_readable"]["p50"] - (0.5 + 27 / FPS)) < 1e-3


def test_vehicles_before_a_camera_joined_are_not_scored(tmp_path: Path):
    truths = [truth("AB12 CDE", 10), truth("XY34 ZZZ", 200)]
    frames = sent_log(tmp_path, 400)
    events = [event(frames.sent[240], "XY34ZZZ", cam=cam) for cam in ("cam1", "cam2")]
    calls = [Call("cam1", 0.0, 230, 1), Call("cam2", 0.0, 230, 1), Call("cam2", 0.0, 20, 0)]
    result = score_agent(truths, frames, calls, events, [], [], cameras=2, joined={"cam1": 0, "cam2": 100})
    assert (result["vehicles"], result["not_scored"], result["read"], result["calls"]) == (3, 1, 2, 2)


def test_naive_score_takes_the_first_answer_with_the_plate(tmp_path: Path):
    truths = [truth("AB12 CDE", 10)]
    frames = sent_log(tmp_path, 200)
    stop0 = frames.sent[40]
    answers = [{"answered": stop0 - 1.0, "plates": [], "bytes": 1000},
               {"answered": stop0 - 0.2, "plates": ["ab12cde"], "bytes": 3000},
               {"answered": stop0 + 0.8, "plates": ["ab12cde"], "bytes": 2000}]
    calls = [Call("", 0.0, 5, None), Call("", 0.0, 38, 0), Call("", 0.0, 52, 0)]
    result = score_naive(truths, frames, calls, answers)
    assert (result["read"], result["calls"], result["gap_calls"], result["vehicle_calls_per_vehicle"]) == (1, 3, 1, 2)
    assert abs(result["latency_s"]["event"]["p50"] + 0.2) < 1e-3


def test_table_marks_a_missed_goal():
    agent = {"cameras": 1, "vehicles": 10, "read": 9, "read_pct": 90.0, "events_per_vehicle": 0.9,
             "events_update": 0, "events_stray": 0, "calls": 12, "calls_per_vehicle": 1.2, "gap_calls": 0,
             "cpu_pct": 30.0, "peak_rss_mb": 180.0, "latency_s": {}, "agent": {"cam1": {"dropped": 2}}}
    doc = {"machine": {"date": "d", "nproc": 2, "cpu": "c", "python": "3"}, "load_start": 0.5, "load_end": 0.6,
           "args": {"reader_latency_s": 0.0}, "idle": {"ratio": 1.2, "command": {"cpu_pct": 6}, "bare": {"cpu_pct": 5}},
           "agent": {"1": agent}}
    out = table(doc)
    assert "| vehicles read (1 camera, 10 vehicles, drawn plates) | 9/10 (90.0%) |  | ≥ 98% | MISSED |" in out
    assert "| API calls per vehicle (all calls ÷ vehicles) | 1.2 |  | ≤ 1.2 | met |" in out
    assert "1.20x" in out


def test_agent_score_counts_calls_the_simulator_read_no_plate_in(tmp_path: Path):
    truths = [truth("AB12 CDE", 10)]
    frames = sent_log(tmp_path, 100)
    calls = [Call("cam1", 0.0, 20, 0, []), Call("cam1", 0.0, 30, 0, ["AB12CDE"]), Call("cam1", 0.0, 95, None, [])]
    result = score_agent(truths, frames, calls, [], relay_on=[], mqtt_got=[], cameras=1)
    assert (result["calls"], result["empty_calls"], result["gap_calls"]) == (3, 1, 1)


def test_cost_table_per_stage_and_the_rest_of_the_process():
    cams = {c: {"decode": {"calls": 150, "ms": 1500.0, "cpu_ms": 300.0},
                "motion": {"calls": 100, "ms": 100.0, "cpu_ms": 80.0}, "since_s": 10.0} for c in ("a", "b")}
    agent = {"read": {"calls": 2, "ms": 40.0, "cpu_ms": 10.0}, "since_s": 10.0}
    costs = stage_costs(cams, agent, process_pct=20.0)
    assert costs["decode"] == {"per_s": 15.0, "cpu_ms": 2.0, "wall_ms": 10.0, "pct": 3.0}  # the mean camera
    assert costs["motion"]["pct"] == 0.8 and costs["read"]["pct"] == 0.1
    assert costs["rest"]["pct"] == round(20.0 - 2 * (3.0 + 0.8) - 0.1, 2)
    out = cost_table(None, costs)
    assert "| motion gate | – | 0.80 ms × 10/s = 0.8% |" in out
