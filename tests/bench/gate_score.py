"""Scores of the gate scenes (tests/bench/gate.py), per client, from the calls the reader simulator
saw, the agent's events and the relay's ON frames; and the tables of BENCHMARKS.md "Gate scenes".

A call is classified by what the simulator read in it and where its crop lies, never by its time
alone: ``read`` (a moving vehicle's plate), ``static`` (a parked car's plate, or a crop that lies on
a sign, a parked car or van), ``empty`` (no plate read while a vehicle was in view: a cut-off, too
small or too degraded plate, lettering), ``gap`` (no plate and no vehicle in view).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent.tools.scene import StaticTruth, VehicleTruth
from tests.bench.clip import FrameLog
from tests.bench.e2e import first_answers, norm, summary

RELAY_EVENT_S = 2.0  # the event line follows its relay ON within this (the relay is served first; slack for load)
# ... but the bench sees the relay through the board emulator's thread, which a loaded machine can
# run a few frames late: the event line may then be read first, by this much at most
RELAY_SEEN_LATE_S = 0.5


@dataclass
class Call:
    """One upload as the reader simulator saw it."""

    client: str
    captured: float  # wall time of its frame's capture (the upload's timestamp field)
    frame: int | None  # the frame being sent then (for the score only)
    texts: list[str]  # plates the simulator read in it (normalised)
    static: int | None  # the static object its crop lies on, if any
    size: tuple[int, int]
    judge_s: float = 0.0


def in_view(truths: Sequence[VehicleTruth], frame: int | None) -> list[int]:
    if frame is None:
        return []
    return [i for i, v in enumerate(truths) if v.enter_frame <= frame < v.exit_frame]


def classify(call: Call, truths: Sequence[VehicleTruth], statics: Sequence[StaticTruth]) -> tuple[str, int | None]:
    """(kind, vehicle or static object index) of one call."""
    moving = {norm(v.plate): i for i, v in enumerate(truths)}
    parked = {norm(o.text): k for k, o in enumerate(statics) if o.kind == "car" and o.text}
    for t in call.texts:
        if t in moving:
            return "read", moving[t]
    for t in call.texts:
        if t in parked:
            return "static", parked[t]
    if call.static is not None:
        return "static", call.static
    if in_view(truths, call.frame):
        return "empty", None
    return "gap", None


def _calls(calls: Sequence[Call], truths: Sequence[VehicleTruth], statics: Sequence[StaticTruth]) -> dict[str, Any]:
    kinds: Counter[str] = Counter()
    per_static: Counter[int] = Counter()
    for c in calls:
        kind, idx = classify(c, truths, statics)
        kinds[kind] += 1
        if kind == "static" and idx is not None:
            per_static[idx] += 1
    n = len(truths)
    return {
        "calls": len(calls), "calls_per_vehicle": round(len(calls) / n, 3) if n else None,
        "calls_read": kinds["read"], "calls_static": kinds["static"], "calls_empty": kinds["empty"],
        "calls_gap": kinds["gap"], "static_repeats": sum(max(0, k - 1) for k in per_static.values()),
        "judge_ms": summary([round(1000 * c.judge_s, 1) for c in calls]),
        "calls_log": [{"frame": c.frame, "texts": c.texts, "static": c.static, "size": list(c.size),
                       "kind": classify(c, truths, statics)[0], "judge_ms": round(1000 * c.judge_s, 1)}
                      for c in calls],
    }


def _event_latency(truths: Sequence[VehicleTruth], sent: dict[int, float],
                   first: dict[int, float]) -> dict[str, list[float]]:
    """Seconds from a vehicle's stop (approaching ones) and from its first readable frame to its event."""
    lat: dict[str, list[float]] = {"event_from_stop": [], "event_from_readable": []}
    for v, at in first.items():
        t = truths[v]
        if t.direction == "approach" and t.stop_frame in sent:
            lat["event_from_stop"].append(at - sent[t.stop_frame])
        if t.readable_frame in sent:
            lat["event_from_readable"].append(at - sent[t.readable_frame])
    return lat


def score_agent(truths: list[VehicleTruth], statics: list[StaticTruth], frames: FrameLog, calls: list[Call],
                events: list[tuple[float, dict[str, Any]]], relay_on: list[float]) -> dict[str, Any]:
    """Calls, events, recall, and every relay ON attributed to the event that follows it."""
    by_plate = {norm(v.plate): i for i, v in enumerate(truths)}
    sent = frames.sent
    readable = {i for i, v in enumerate(truths) if v.readable_frame >= 0}
    first_event: dict[int, float] = {}
    stray = unread = updates = 0
    news: list[tuple[float, int | None]] = []
    for at, e in events:
        plate = norm(e.get("plate") or "")
        if e.get("type") == "update":
            updates += 1
            continue
        if not plate or e.get("type") == "unread":
            unread += 1
            continue
        v = by_plate.get(plate)
        news.append((at, v))
        if v is None:
            stray += 1
        else:
            first_event.setdefault(v, at)
    lat: dict[str, list[float]] = {"relay_from_stop": [], "relay_from_readable": [],
                                   **_event_latency(truths, sent, first_event)}
    opens: Counter[str] = Counter()
    opened: set[int] = set()
    log: list[dict[str, Any]] = []  # every relay ON: when, which frame, for which vehicle, how judged
    for r in relay_on:
        near = [(abs(at - r), v) for at, v in news if r - RELAY_SEEN_LATE_S <= at <= r + RELAY_EVENT_S]
        v = min(near)[1] if near else None  # the event nearest the relay ON is its own
        frame = frames.frame_at(r)
        kind = _open_kind(truths, v, frame, opened)
        log.append({"frame": frame, "vehicle": None if v is None else truths[v].plate, "kind": kind})
        opens[kind] += 1
        if kind != "timely" or v is None:
            continue
        opened.add(v)
        t = truths[v]
        if t.stop_frame in sent:
            lat["relay_from_stop"].append(r - sent[t.stop_frame])
        if t.readable_frame in sent:
            lat["relay_from_readable"].append(r - sent[t.readable_frame])
    approach = [i for i, v in enumerate(truths) if v.direction == "approach"]
    n = len(truths)
    out = {
        "vehicles": n, "approaching": len(approach), "readable": len(readable),
        "read": len(first_event), "read_readable": len(readable & set(first_event)),
        "recall_pct": round(100 * len(readable & set(first_event)) / len(readable), 1) if readable else None,
        "events_new": len(news), "events_update": updates, "events_unread": unread, "events_stray": stray,
        "opens_timely": opens["timely"], "opens_false": opens["false"], "opens_late": opens["late"],
        "opens_leaving": opens["leaving"], "opens_again": opens["again"],
        "not_opened": len([i for i in approach if i in readable and i not in opened]),
        "latency_s": {k: summary(xs) for k, xs in lat.items()}, "latency_raw": lat, "relay_log": log,
        "events_log": [{"frame": frames.frame_at(at), "type": e.get("type"), "plate": e.get("plate")}
                       for at, e in events],
    }
    out.update(_calls(calls, truths, statics))
    return out


def _open_kind(truths: Sequence[VehicleTruth], v: int | None, frame: int | None, opened: set[int]) -> str:
    """timely (an approaching vehicle before it drives off the line), late (after that), leaving
    (a vehicle driving away), again (a second opening for one vehicle), false (no vehicle's event)."""
    if v is None:
        return "false"
    t = truths[v]
    if t.direction != "approach":
        return "leaving"
    if frame is not None and frame >= t.leave_frame:
        return "late"
    return "again" if v in opened else "timely"


def score_naive(truths: list[VehicleTruth], statics: list[StaticTruth], frames: FrameLog, calls: list[Call],
                answers: list[dict[str, Any]]) -> dict[str, Any]:
    """The baseline's "event" for a vehicle is the first answer carrying its plate."""
    first = first_answers(truths, answers)
    readable = {i for i, v in enumerate(truths) if v.readable_frame >= 0}
    lat = _event_latency(truths, frames.sent, first)
    out: dict[str, Any] = {"vehicles": len(truths), "readable": len(readable), "read": len(first),
           "read_readable": len(readable & set(first)),
           "recall_pct": round(100 * len(readable & set(first)) / len(readable), 1) if readable else None,
           "latency_s": {k: summary(xs) for k, xs in lat.items()}, "latency_raw": lat}
    out.update(_calls(calls, truths, statics))
    return out


# ---------------------------------------------------------------- tables

COUNTS = ("vehicles", "readable", "read_readable", "calls", "calls_read", "calls_static", "calls_empty",
          "calls_gap", "static_repeats", "opens_timely", "opens_false", "opens_late", "opens_leaving",
          "not_opened", "events_unread", "events_stray")
CLIENT_NAMES = {"sdk": "agent, reader 0 s", "cloud": "agent, reader 1/s", "naive": "naive, 1 frame/s"}


def overall(scenes: Sequence[dict[str, Any]], client: str) -> dict[str, Any]:
    """Counts summed and latencies pooled over the scenes, for one client."""
    rows = [s[client] for s in scenes if client in s]
    out: dict[str, Any] = {k: sum(r.get(k) or 0 for r in rows) for k in COUNTS}
    n = out["vehicles"]
    out["calls_per_vehicle"] = round(out["calls"] / n, 3) if n else None
    out["recall_pct"] = round(100 * out["read_readable"] / out["readable"], 1) if out["readable"] else None
    keys = {k for r in rows for k in r.get("latency_raw", {})}
    out["latency_s"] = {k: summary([x for r in rows for x in r.get("latency_raw", {}).get(k, [])]) for k in keys}
    out["is_agent"] = client != "naive"
    return out


def _lat(r: dict[str, Any], key: str) -> str:
    s = r.get("latency_s", {}).get(key) or {}
    return f"{s['p50']:+.2f} / {s['p95']:+.2f}" if s.get("n") else "–"


def _row(scene: str, client: str, r: dict[str, Any]) -> str:
    agent = client != "naive"
    cells = [
        scene, CLIENT_NAMES.get(client, client), f"{r['vehicles']} ({r['readable']})",
        f"{r['calls_per_vehicle']}", f"{r['calls_read']} / {r['calls_static']} / {r['calls_empty']} / {r['calls_gap']}",
        f"{r['static_repeats']}",
        f"{r['recall_pct']}%" if r.get("recall_pct") is not None else "–",
        _lat(r, "relay_from_stop") if agent else f"({_lat(r, 'event_from_stop')})",
        _lat(r, "relay_from_readable") if agent else f"({_lat(r, 'event_from_readable')})",
        f"{r['opens_false']} / {r['opens_late']} / {r['opens_leaving']}" if agent else "–",
    ]
    return "| " + " | ".join(cells) + " |"


def gate_table(scenes: Sequence[dict[str, Any]], clients: Sequence[str]) -> str:
    head = ("scene", "client", "vehicles (readable)", "paid calls / vehicle",
            "calls: read / static / empty / gap", "repeat calls on a static object", "recall",
            "relay ON from stop line p50 / p95 s", "relay ON from whole plate p50 / p95 s",
            "opens: false / late / leaving")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in scenes:
        lines += [_row(s["scene"], c, s[c]) for c in clients if c in s]
    lines += [_row("**all**", c, overall(scenes, c)) for c in clients]
    if "naive" in clients:
        lines.append("")
        lines.append("naive: no relay; its figures in brackets are its first answer carrying the plate.")
    return "\n".join(lines)


def details(scene: dict[str, Any], clients: Sequence[str]) -> str:
    """One scene's ground truth, then per client every call and relay opening with its frame."""
    lines = [f"== {scene['scene']}: vehicles (plate, direction, enter / readable / stop / leave / exit frame)"]
    lines += [f"   {t['plate']:10} {t['direction']:8} {t['enter_frame']} / {t['readable_frame']} / {t['stop_frame']} / "
              f"{t['leave_frame']} / {t['exit_frame']}" for t in scene.get("truth", [])]
    lines += [f"   static {o['kind']} {o['text']!r} box {o['box']}" for o in scene.get("statics", [])]
    for c in clients:
        r = scene.get(c)
        if not r:
            continue
        lines.append(f"-- {CLIENT_NAMES.get(c, c)}")
        lines += [f"   call  frame {x['frame']}: {x['kind']:6} {' '.join(x['texts']) or '-'} "
                  f"({x['size'][0]}x{x['size'][1]}, simulator {x['judge_ms']} ms)" for x in r.get("calls_log", [])]
        lines += [f"   event frame {x['frame']}: {x['type']} {x['plate'] or '-'}" for x in r.get("events_log", [])]
        lines += [f"   relay frame {x['frame']}: {x['kind']} ({x['vehicle'] or 'no event'})"
                  for x in r.get("relay_log", [])]
    return "\n".join(lines)
