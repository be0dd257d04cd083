"""The gate scenes' ground truth and the gate score, checked for correctness only (no clip, no agent)."""

from __future__ import annotations

from pathlib import Path

from agent.tools.scene import StaticTruth, VehicleTruth, plate_boxes, render, static_objects
from tests.bench.clip import FrameLog
from tests.bench.gate_score import Call, classify, gate_table, overall, score_agent
from tests.bench.scenes import SCENES

FPS = 15.0


def test_every_scene_has_consistent_ground_truth_and_its_own_plates():
    seen: set[str] = set()
    for name, make in SCENES.items():
        spec = make()
        _, truths, total = render(spec)
        plates = [t.plate for t in truths] + [o.text for o in static_objects(spec) if o.kind == "car"]
        assert not seen & set(plates), name
        seen |= set(plates)
        for t in truths:
            assert 0 < t.enter_frame < t.exit_frame <= total, name
            if t.direction == "approach":
                assert t.enter_frame < t.stop_frame < t.leave_frame < t.exit_frame, name
            else:
                assert t.stop_frame == -1, name


def test_the_edge_scene_shows_a_cut_off_plate_before_the_whole_one():
    spec = SCENES["edge"]()
    boxes = plate_boxes(spec)[0]
    first = min(boxes)
    assert boxes[first][3] > spec.height  # the plate starts below the frame's bottom edge
    whole = [i for i, b in sorted(boxes.items()) if b[3] <= spec.height]
    assert whole and any(boxes[i][1] < spec.height < boxes[i][3] for i in range(first, whole[0]))


def test_a_leaving_vehicle_shrinks_and_a_queue_has_two_vehicles_in_view():
    spec = SCENES["leave"]()
    _, truths, _ = render(spec)
    k = next(i for i, t in enumerate(truths) if t.direction == "leave")
    boxes = plate_boxes(spec)[k]
    widths = [b[2] - b[0] for _, b in sorted(boxes.items())]
    assert widths[0] > widths[-1] and widths == sorted(widths, reverse=True)
    _, q, _ = render(SCENES["queue"]())
    assert q[1].enter_frame < q[0].leave_frame  # the second is in view while the first waits at the line


def test_static_objects_lie_inside_the_frame():
    for name in ("signs", "parked"):
        spec = SCENES[name]()
        objects = static_objects(spec)
        assert objects, name
        for o in objects:
            x1, y1, x2, y2 = o.box
            assert 0 <= x1 < x2 <= spec.width and 0 <= y1 < y2 <= spec.height, (name, o)
    parked = static_objects(SCENES["parked"]())[0]
    assert parked.kind == "car" and parked.plate_box


def _truths() -> list[VehicleTruth]:
    return [VehicleTruth("AB12 CDE", 10, 40, 70, 90, readable_frame=20),
            VehicleTruth("XY34 ZZZ", 200, -1, 200, 260, readable_frame=205, direction="leave")]


STATICS = [StaticTruth("sign", "PRIVATE", [0, 0, 100, 50]), StaticTruth("car", "PK11 CAR", [0, 400, 300, 600])]


def test_calls_are_classified_by_what_the_simulator_read_and_where_the_crop_lies():
    t = _truths()
    assert classify(Call("sdk", 0, 30, ["AB12CDE"], None, (100, 40)), t, STATICS) == ("read", 0)
    assert classify(Call("sdk", 0, 30, ["PK11CAR"], None, (100, 40)), t, STATICS) == ("static", 1)
    assert classify(Call("sdk", 0, 30, [], 0, (100, 40)), t, STATICS) == ("static", 0)
    assert classify(Call("sdk", 0, 30, [], None, (100, 40)), t, STATICS) == ("empty", None)
    assert classify(Call("sdk", 0, 120, [], None, (100, 40)), t, STATICS) == ("gap", None)


def sent_log(tmp_path: Path, n: int) -> FrameLog:
    log = tmp_path / "frames.log"
    log.write_text("".join(f"{i} {1000 + i / FPS:.6f}\n" for i in range(n)))
    return FrameLog(log).load()


def test_relay_opens_are_timely_late_false_or_for_a_leaving_vehicle(tmp_path: Path):
    truths, frames = _truths(), sent_log(tmp_path, 300)
    at = frames.sent
    events = [(at[30] + 0.01, {"type": "new", "plate": "AB12CDE"}),
              (at[210] + 0.01, {"type": "new", "plate": "XY34ZZZ"}), (at[220], {"type": "unread", "plate": ""})]
    relay = [at[30], at[210], at[150]]  # for the car before it stops, for the leaving car, for nobody
    calls = [Call("sdk", 0, 25, ["AB12CDE"], None, (1, 1)), Call("sdk", 0, 26, [], 0, (1, 1)),
             Call("sdk", 0, 100, [], 0, (1, 1)), Call("sdk", 0, 120, [], None, (1, 1))]
    r = score_agent(truths, STATICS, frames, calls, events, relay)
    assert (r["opens_timely"], r["opens_leaving"], r["opens_false"], r["opens_late"]) == (1, 1, 1, 0)
    assert abs(r["latency_s"]["relay_from_stop"]["p50"] - (at[30] - at[40])) < 1e-3
    assert abs(r["latency_s"]["relay_from_readable"]["p50"] - (at[30] - at[20])) < 1e-3
    assert (r["calls"], r["calls_static"], r["static_repeats"], r["calls_gap"]) == (4, 2, 1, 1)
    assert (r["recall_pct"], r["events_unread"]) == (100.0, 1)
    late = score_agent(truths, STATICS, frames, [], [(at[75] + 0.01, {"type": "new", "plate": "AB12CDE"})], [at[75]])
    assert (late["opens_late"], late["opens_timely"], late["not_opened"]) == (1, 0, 1)
    assert overall([{"scene": "a", "sdk": r}, {"scene": "b", "sdk": late}], "sdk")["opens_late"] == 1
    # the relay board's bytes seen three frames after the event line (a loaded emulator thread): still
    # that car's opening, not a false one; a relay ON with no event near it stays false
    seen_late = score_agent(truths, STATICS, frames, [], [(at[30], {"type": "new", "plate": "AB12CDE"})],
                            [at[33], at[150]])
    assert (seen_late["opens_timely"], seen_late["opens_false"]) == (1, 1)
    assert "| a | agent, reader 0 s | 2 (2) | 2.0 |" in gate_table([{"scene": "a", "sdk": r}], ["sdk"])


def test_readable_is_the_first_frame_the_simulator_reads_the_whole_plate_in_the_agents_crop():
    from agent.tools.scene import SceneSpec, Vehicle, Waypoint
    from tests.bench.gate import Readable

    path = (Waypoint(0.0, 0.5, 1.2, 1.0), Waypoint(1.0, 0.5, 0.8, 1.0), Waypoint(1.4, 0.5, 0.8, 1.0))
    spec = SceneSpec(plates=("AB12 CDE",), vehicles=(Vehicle("AB12 CDE", path, stop=1, leave=2),), width=800,
                     height=480, fps=10.0, lead_in_s=0.0, noise_sigma=3.0)
    frames, truths, _ = render(spec)
    geometric = truths[0].readable_frame  # whole in the frame and wide enough, by the drawing's arithmetic
    readable = Readable(spec, truths)
    for i, img in enumerate(frames):
        readable(i, img)
    boxes = plate_boxes(spec)[0]
    assert boxes[0][3] > spec.height and 0 <= geometric <= truths[0].readable_frame < truths[0].stop_frame
