"""The cost table per stage: ms of CPU per call and % of one core, at idle (the still camera-like
stream of idle_cpu.py) and with a car in view (the gate scene), from the agent's stage times
(``agent/stagetime.py``: each stage's own thread CPU) and the process's CPU from /proc.

"rest" is the process's CPU not inside a timed stage: FFmpeg's decoder threads (OpenCV decodes on
FFmpeg's own threads; the capture thread's ``decode`` is demuxing, waiting and BGR conversion),
TFLite's worker thread (``num_threads = 2``), the supervisor and Python itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CAMERA_STAGES = ("decode", "motion", "detector", "crop")
AGENT_STAGES = ("read", "sinks")
LABELS = {"decode": "decode (capture thread: read, demux, convert)", "motion": "motion gate",
          "detector": "detector (its turn's wait included)", "crop": "crop and JPEG",
          "read": "read worker (upload, answer)", "sinks": "sinks (send on the answer path)"}


def stage_costs(cameras: Mapping[str, Any], agent: Mapping[str, Any] | None, process_pct: float) -> dict[str, Any]:
    """Per stage: calls/s, CPU ms per call, % of one core (camera stages: the mean camera), and the
    rest of the process; ``cameras``: each camera's ``stages`` snapshot; ``agent``: the agent's."""
    n = max(1, len(cameras))
    out: dict[str, Any] = {}
    for stage in CAMERA_STAGES:
        calls = cpu = wall = secs = 0.0
        for snap in cameras.values():
            s = (snap or {}).get(stage) or {}
            calls, cpu, wall = calls + s.get("calls", 0), cpu + s.get("cpu_ms", 0.0), wall + s.get("ms", 0.0)
            secs = max(secs, float((snap or {}).get("since_s") or 0.0))
        out[stage] = _row(calls / n, cpu / n, wall / n, secs)
    secs = float((agent or {}).get("since_s") or 0.0)
    for stage in AGENT_STAGES:
        s = (agent or {}).get(stage) or {}
        out[stage] = _row(s.get("calls", 0), s.get("cpu_ms", 0.0), s.get("ms", 0.0), secs)
    timed = sum(out[s]["pct"] for s in CAMERA_STAGES) * n + sum(out[s]["pct"] for s in AGENT_STAGES)
    out["rest"] = {"pct": round(max(0.0, process_pct - timed), 2)}
    out["process_pct"] = process_pct
    out["cameras"] = n
    return out


def _row(calls: float, cpu_ms: float, wall_ms: float, secs: float) -> dict[str, float]:
    return {"per_s": round(calls / secs, 2) if secs else 0.0,
            "cpu_ms": round(cpu_ms / calls, 2) if calls else 0.0,
            "wall_ms": round(wall_ms / calls, 2) if calls else 0.0,
            "pct": round(100 * cpu_ms / (1000 * secs), 2) if secs else 0.0}


def idle_costs(idle: Mapping[str, Any]) -> dict[str, Any] | None:
    """From an ``idle_cpu.py`` result whose command was the agent (``tests.bench.agent_proc``)."""
    stats = (idle.get("command") or {}).get("stats")
    if not stats:
        return None
    cams = {cid: c.get("stages") for cid, c in stats.get("cameras", {}).items()}
    return stage_costs(cams, stats.get("stages"), float(idle["command"]["cpu_pct"]))


def scene_costs(run: Mapping[str, Any]) -> dict[str, Any] | None:
    """From an ``e2e.run_agent`` result."""
    st = run.get("stages")
    if not st:
        return None
    return stage_costs(st.get("cameras") or {}, st.get("agent"), float(run["cpu_pct"]))


def cost_table(idle: Mapping[str, Any] | None, car: Mapping[str, Any] | None) -> str:
    """Markdown: per stage, calls/s, CPU ms per call and % of one core, idle and with a car in view."""
    def cell(c: Mapping[str, Any] | None, stage: str) -> str:
        r = (c or {}).get(stage)
        if not r:
            return "–"
        if stage == "rest":
            return f"{r['pct']:.1f}%"
        if not r["per_s"]:
            return "0"
        wall = f", wall {r['wall_ms']:.1f}" if stage == "detector" else ""
        return f"{r['cpu_ms']:.2f} ms{wall} × {r['per_s']:g}/s = {r['pct']:.1f}%"

    n_car = (car or {}).get("cameras", 1)
    head = ("stage", "idle: CPU ms per call × calls/s = % of one core",
            f"car in view ({n_car} camera(s), per camera; read and sinks: whole agent)")
    lines = ["| " + " | ".join(head) + " |", "|---|---|---|"]
    for stage in (*CAMERA_STAGES, *AGENT_STAGES):
        lines.append(f"| {LABELS[stage]} | {cell(idle, stage)} | {cell(car, stage)} |")
    lines.append(f"| rest of the process (FFmpeg and TFLite threads, supervisor) | {cell(idle, 'rest')} | "
                 f"{cell(car, 'rest')} (all cameras) |")
    lines.append(f"| **whole process** (/proc) | {(idle or {}).get('process_pct', '–')}% | "
                 f"{(car or {}).get('process_pct', '–')}% |")
    return "\n".join(lines)


__all__ = ["cost_table", "idle_costs", "scene_costs", "stage_costs"]
