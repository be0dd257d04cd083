"""Every benchmark in one run: idle cost, detector, end to end on the gate scene, the naive baseline
and 1/2/4 cameras; one table on stdout, everything as JSON with ``--json``. See BENCHMARKS.md.

    .venv/bin/python -m tests.bench.run [--json bench.json] [--vehicles 10] [--reader-latency-s 0]
    .venv/bin/python -m tests.bench.run --scenes [--scene edge,signs] [--clients sdk,cloud,naive]

Needs Debian's python3 with GStreamer's RTSP server (as the RTSP tests do); mosquitto for the MQTT
latency (skipped without it); ../shared/data/plates for the detector figures (skipped without it).
Progress goes to stderr. About 8 minutes on a 2-core machine.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.tools.scene import SceneSpec, plate_texts
from tests.bench import e2e, gate, idle_cpu
from tests.bench.costs import cost_table, idle_costs, scene_costs
from tests.bench.gate_score import details, gate_table
from tests.bench.scenes import SCENES
from tests.bench.clip import real_plates, scene_clip
from tests.fixtures_rtsp import rtsp_unavailable

ROOT = Path(__file__).resolve().parents[2]
PLATES_DATA = ROOT.parent / "shared" / "data" / "plates"
PACKAGES = ("opencv-python-headless", "opencv-python", "numpy", "ai-edge-litert", "tflite-runtime",
            "requests", "paho-mqtt", "pyserial")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def bench_scene(vehicles: int, plates: Sequence[tuple[str, str]] = ()) -> SceneSpec:
    """The gate scene: 720p15, vehicles that drive in (from far away), stop ~2 s and leave, gaps,
    and every distractor on. ``plates``: (text, picture) of real plates; else drawn ones."""
    texts = tuple(t for t, _ in plates) if plates else tuple(plate_texts(vehicles))
    # lead-in: every camera of a 4-camera run has connected before the first vehicle comes (OpenCV
    # opens one stream at a time per process, ~2 s each while FFmpeg probes the stream)
    return SceneSpec(plates=texts, plate_images=tuple(p for _, p in plates), lead_in_s=10.0, drive_in_s=2.0,
                     stop_s=2.0, drive_out_s=1.5, gap_s=3.0, tail_s=2.0, approach_scale=0.1, clock_overlay=True,
                     pedestrian=True, brightness_drift=2.0, noise_sigma=3.0)


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                      if ln.startswith("model name")), "")
    versions = {}
    for p in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[p] = metadata.version(p)
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["gst-launch-1.0", "--version"], capture_output=True, text=True, timeout=10).stdout
        versions["gstreamer"] = out.splitlines()[1].split()[-1]
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "kernel": platform.release(), "packages": versions,
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")}


def run_idle(seconds: float, backend: str = "auto") -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json") as f, contextlib.redirect_stdout(sys.stderr):
        idle_cpu.main(["--seconds", str(seconds), "--together", "--backend", backend, "--json", f.name])
        return dict(json.loads(Path(f.name).read_text()))


def run_detector(data: Path) -> dict[str, Any]:
    if not (data / "annotations.csv").exists():
        return {"skipped": f"{data} not present"}
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        subprocess.run([sys.executable, "-m", "agent", "eval-detector", "--data", str(data), "--json", f.name],
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return dict(json.loads(Path(f.name).read_text()))


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", metavar="FILE", help="also write every figure as JSON")
    ap.add_argument("--vehicles", type=int, default=10, help="vehicles in the scene (default 10)")
    ap.add_argument("--reader-latency-s", type=float, default=0.0, help="contract server answer delay")
    ap.add_argument("--idle-seconds", type=float, default=30.0, help="idle measurement window per process")
    ap.add_argument("--cameras", default="1,2,4", help="camera counts for the scaling runs")
    ap.add_argument("--pin", default="", metavar="CPUS",
                    help="run the agent on these CPUs only (taskset -c), e.g. 0: cameras per core")
    ap.add_argument("--agent-toml", default="", metavar="TOML",
                    help=r"appended to the agent's config, e.g. '[detector]\ninstances = 2\nnum_threads = 1'")
    ap.add_argument("--backend", choices=("auto", "pyav", "opencv"), default="auto",
                    help="the agent's camera backend (auto: the agent's default, PyAV where installed)")
    ap.add_argument("--no-idle-keyframes", dest="idle_keyframes", action="store_false",
                    help="the cameras decode every frame while idle too (idle_keyframes = false)")
    ap.add_argument("--skip", default="", help="comma list of: idle, detector, naive, scaling")
    ap.add_argument("--data", default=str(PLATES_DATA),
                    help="annotated plate images: eval-detector, and the scene's plates when present")
    ap.add_argument("--plates", choices=("auto", "real", "drawn"), default="auto",
                    help="scene plates: cut from --data (auto: when present) or drawn")
    ap.add_argument("--reader", choices=("judge", "time"), default="judge",
                    help="the contract server reads the uploaded image (judge, the default) or answers with "
                         "the plate of the vehicle in view when the frame was taken (time: the old, kinder way)")
    ap.add_argument("--scenes", action="store_true",
                    help="only the gate scenes (tests/bench/scenes.py): a few minutes")
    ap.add_argument("--scene", default="", help=f"with --scenes: comma list of {', '.join(SCENES)} (default all)")
    ap.add_argument("--details", action="store_true",
                    help="with --scenes: also print every call, event and relay opening per scene (stderr)")
    ap.add_argument("--clients", default=",".join(gate.CLIENTS),
                    help="with --scenes: comma list of sdk (reader 0 s), cloud (1 call/s), naive")
    args = ap.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    why = rtsp_unavailable()
    if why:
        raise SystemExit(f"RTSP test server unavailable: {why}")
    if args.scenes or args.scene:
        return run_scenes(args)
    t_start = time.monotonic()
    doc: dict[str, Any] = {"machine": machine(), "load_start": loadavg(), "args": vars(args)}
    log(f"load average {doc['load_start']:.2f}; {doc['machine']['nproc']} CPUs")
    if "idle" not in skip:
        log("idle cost: a bare read loop and the agent together, on a still 720p15 stream with sensor noise")
        doc["idle"] = run_idle(args.idle_seconds, args.backend)
    if "detector" not in skip:
        log(f"detector: eval-detector on {args.data}")
        doc["detector"] = run_detector(Path(args.data))
    plates: list[tuple[str, str]] = []
    if args.plates != "drawn" and (Path(args.data) / "annotations.csv").exists():
        plates = real_plates(args.vehicles, Path(args.data))
    if args.plates == "real" and not plates:
        raise SystemExit(f"not enough annotated plates in {args.data}")
    spec = bench_scene(args.vehicles, plates)
    kind = "real (cut from the plate data set)" if plates else "drawn"
    log(f"scene: {args.vehicles} vehicles, {kind} plates, rendering/encoding (cached)")
    clip, truths = scene_clip(spec)
    doc["scene"] = {"clip": str(clip), "vehicles": len(truths), "frames": truths[-1].exit_frame if truths else 0,
                    "fps": spec.fps, "size": f"{spec.width}x{spec.height}", "plates": kind}
    judge = gate.make_judge(spec).warm() if args.reader == "judge" else None
    counts = [int(c) for c in args.cameras.split(",") if c]
    if "scaling" in skip:
        counts = counts[:1]
    doc["agent"] = {}
    for n in counts:
        log(f"agent, {n} camera(s), on the scene")
        doc["agent"][str(n)] = e2e.run_agent(clip, spec, truths, cameras=n, latency_s=args.reader_latency_s,
                                             judge=judge, pin=args.pin, extra_toml=args.agent_toml,
                                             backend=args.backend, idle_keyframes=args.idle_keyframes)
        doc["agent"][str(n)]["plates"] = "real" if plates else "drawn"
        if n == counts[0] and "naive" not in skip:
            log("naive baseline (one full frame a second) on the scene")
            doc["naive"] = e2e.run_naive(clip, spec, truths, latency_s=args.reader_latency_s, judge=judge)
    doc["load_end"] = loadavg()
    doc["duration_s"] = round(time.monotonic() - t_start, 1)
    print(table(doc))
    idle = idle_costs(doc["idle"]) if doc.get("idle") else None
    car = scene_costs(doc["agent"][str(counts[0])]) if counts else None
    doc["costs"] = {"idle": idle, "car": car}
    print("\nCost per stage\n\n" + cost_table(idle, car))
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    return 0


def run_scenes(args: argparse.Namespace) -> int:
    names = [n for n in args.scene.split(",") if n] or list(SCENES)
    unknown = [n for n in names if n not in SCENES]
    if unknown:
        raise SystemExit(f"unknown scene(s) {', '.join(unknown)}; known: {', '.join(SCENES)}")
    clients = tuple(c for c in args.clients.split(",") if c)
    t_start = time.monotonic()
    doc: dict[str, Any] = {"machine": machine(), "load_start": loadavg(), "args": vars(args), "scenes": []}
    log(f"load average {doc['load_start']:.2f}; {doc['machine']['nproc']} CPUs; gate scenes {', '.join(names)}")
    for name in names:
        log(f"scene {name}: rendering/encoding (cached), then {', '.join(clients)} on one stream")
        result = gate.run_scene(name, SCENES[name](), clients, args.backend, args.idle_keyframes)
        doc["scenes"].append(result)
        log(f"scene {name}: " + ", ".join(f"{c} {result[c]['calls']} calls" for c in clients if c in result))
        if args.details:
            print(details(result, clients), file=sys.stderr, flush=True)
    doc["load_end"] = loadavg()
    doc["duration_s"] = round(time.monotonic() - t_start, 1)
    m = doc["machine"]
    print(gate_table(doc["scenes"], clients))
    print(f"\n{m['date']}, {m['nproc']} × {m['cpu']}, Python {m['python']}, load {doc['load_start']:.2f} → "
          f"{doc['load_end']:.2f}, {doc['duration_s']} s in all")
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1) + "\n")
    return 0


# ---------------------------------------------------------------- the table


def _lat(d: dict[str, Any] | None, key: str) -> str:
    s = (d or {}).get("latency_s", {}).get(key) or {}
    if not s.get("n"):
        return "–"
    return f"{s['p50']:+.2f} / {s['p95']:+.2f} s"


def _unscored(r: dict[str, Any]) -> str:
    n = r.get("not_scored") or 0
    return f" (+{n} before its camera connected)" if n else ""


def _ok(good: bool | None) -> str:
    return "" if good is None else ("met" if good else "MISSED")


def _p95(d: dict[str, Any] | None, key: str) -> float | None:
    return ((d or {}).get("latency_s", {}).get(key) or {}).get("p95")


def table(doc: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str, str, str]] = []
    idle = doc.get("idle")
    if idle:
        rows.append((f"idle CPU: agent ÷ bare OpenCV read loop ({idle.get('stream', '720p15')})",
                     f"{idle['ratio']:.2f}x ({idle['command']['cpu_pct']}% vs {idle['bare']['cpu_pct']}%)",
                     "", "≤ 0.5", _ok(idle["ratio"] <= 0.5)))
    det = doc.get("detector")
    if det and "overall" in det:
        o = det["overall"]
        rows.append(("detector: ms/inference p50 / p95", f"{o['ms_p50']} / {o['ms_p95']} ms", "", "", ""))
        rows.append((f"detector: recall@0.5 IoU ({o['images']} images), false boxes/img",
                     f"{100 * o['recall@0.5']:.1f}%, {o['false_per_image']}", "", "", ""))
    elif det:
        rows.append(("detector", f"skipped: {det['skipped']}", "", "", ""))
    agents = doc.get("agent", {})
    a = agents.get(min(agents, key=int)) if agents else None
    nv = doc.get("naive")
    if a:
        rows += _e2e_rows(a, nv)
    for n, r in sorted(agents.items(), key=lambda kv: int(kv[0])):
        dropped = sum(c.get("dropped") or 0 for c in r["agent"].values())
        decoded = sum((c.get("frames") or 0) + (c.get("frames_skipped") or 0) for c in r["agent"].values())
        cap95 = ((r.get("latency_s") or {}).get("capture_to_event") or {}).get("p95")
        pinned = f" on CPU {r['pin']}" if r.get("pin") else ""
        pinned += f" ({r['extra_toml']})" if r.get("extra_toml") else ""
        rows.append((f"scaling: {n} camera(s){pinned} — CPU, peak RSS, frames dropped, read, "
                     "plate ≥ 40 px → event p50 / p95, capture → event p95",
                     f"{r['cpu_pct']}% of 1 core, {r['peak_rss_mb']:.0f} MB, {dropped}/{decoded + dropped}, "
                     f"{r['read']}/{r['vehicles']}{_unscored(r)}, {_lat(r, 'event_from_readable')}, "
                     f"{'–' if cap95 is None else f'{cap95:.2f} s'}",
                     "", "", ""))
    head = ("measure", "agent", "naive baseline", "goal", "")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    m = doc["machine"]
    lines.append("")
    lines.append(f"{m['date']}, {m['nproc']} × {m['cpu']}, Python {m['python']}, load "
                 f"{doc['load_start']:.2f} → {doc['load_end']:.2f}, reader latency "
                 f"{doc['args']['reader_latency_s']:g} s, {doc.get('duration_s')} s in all")
    return "\n".join(lines)


def _e2e_rows(a: dict[str, Any], nv: dict[str, Any] | None) -> list[tuple[str, str, str, str, str]]:
    n = a["vehicles"]
    rows = [
        (f"vehicles read ({a['cameras']} camera, {n} vehicles, {a.get('plates', 'drawn')} plates)",
         f"{a['read']}/{n} ({a['read_pct']}%)",
         f"{nv['read']}/{nv['vehicles']}" if nv else "", "≥ 98%", _ok(a["read_pct"] >= 98)),
        ("events per vehicle (updates, stray)",
         f"{a['events_per_vehicle']} ({a['events_update']}, {a['events_stray']})", "", "1",
         _ok(a["events_per_vehicle"] == 1 and a["events_stray"] == 0)),
        ("API calls per vehicle (all calls ÷ vehicles)", f"{a['calls_per_vehicle']}",
         f"{nv['calls_per_vehicle']}" if nv else "", "≤ 1.2", _ok(a["calls_per_vehicle"] <= 1.2)),
        ("API calls while a vehicle is in view, per vehicle",
         f"{a['calls_per_vehicle'] if a['gap_calls'] == 0 else '–'}",
         f"{nv['vehicle_calls_per_vehicle']}" if nv else "", "", ""),
        ("API calls with no plate read while a vehicle is in view (reader simulator)",
         f"{a.get('empty_calls', '–')}", "", "", ""),
        ("API calls in vehicle-free gaps (lead-in, gaps, tail)", f"{a['gap_calls']}",
         f"{nv['gap_calls']}" if nv else "", "0", _ok(a["gap_calls"] == 0)),
    ]
    if nv and a["calls"]:
        rows.append(("calls: naive ÷ agent", f"{nv['calls'] / a['calls']:.1f}x fewer with the agent",
                     f"{nv['calls']} vs {a['calls']}", "", ""))
    p95 = _p95(a, "event")
    rows += [
        ("stop-line frame → event (stdout) p50 / p95", _lat(a, "event"), _lat(nv, "event"), "≤ 1.0 s p95",
         _ok(None if p95 is None else p95 <= 1.0)),
        ("stop-line frame → MQTT event p50 / p95", _lat(a, "mqtt"), "", "≤ 1.0 s p95",
         _ok(None if _p95(a, "mqtt") is None else _p95(a, "mqtt") <= 1.0)),  # type: ignore[operator]
        ("stop-line frame → relay ON (serial, emulated board) p50 / p95", _lat(a, "relay"), "", "≤ 1.0 s p95",
         _ok(None if _p95(a, "relay") is None else _p95(a, "relay") <= 1.0)),  # type: ignore[operator]
        ("plate ≥ 40 px in view → event p50 / p95", _lat(a, "event_from_readable"),
         _lat(nv, "event_from_readable"), "", ""),
        ("capture of the uploaded frame → event p50 / p95", _lat(a, "capture_to_event"), "", "", ""),
        ("mean CPU over the scene (% of one core)", f"{a['cpu_pct']}%", f"{nv['cpu_pct']}%" if nv else "", "", ""),
        ("peak RSS", f"{a['peak_rss_mb']} MB", f"{nv['peak_rss_mb']} MB" if nv else "", "≤ 250 MB",
         _ok(a["peak_rss_mb"] <= 250)),
    ]
    return rows


if __name__ == "__main__":
    sys.exit(main())
