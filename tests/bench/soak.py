"""Soak: ``plate-agent run`` for N minutes on a looping drawn gate scene with a car every few
seconds, against the Plate Recognizer contract server (short 502 outages every few minutes, so
the outbox fills and drains), a serial relay board emulator, and mosquitto when installed.

Samples the agent's RSS, open file descriptors and threads from /proc, and its counters from
/status; prints a table and the growth. Not part of CI:

    nice -n 10 .venv/bin/python -m tests.bench.soak --minutes 30 [--json soak.json]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from agent.tools.scene import SceneSpec, write_clip
from tests.fixtures_mqtt import Broker, free_port
from tests.prserver import PRServer
from tests.sinks.lcus import LcusEmulator

ROOT = Path(__file__).resolve().parents[2]
PLATES = ("AB12 CDE", "XX99 XXX", "KX52 ODV", "LR17 WHO")


def proc_sample(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "Threads"):
            fields[key] = int(value.split()[0])
    return {"rss_kb": fields["VmRSS"], "threads": fields["Threads"], "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def get_status(port: int) -> dict[str, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as r:
            return json.loads(r.read())  # type: ignore[no-any-return]
    except urllib.error.HTTPError as err:  # 503: still a document
        return json.loads(err.read())  # type: ignore[no-any-return]


def write_config(tmp: Path, clip: Path, server: PRServer, relay_port: str, status_port: int,
                 broker: Broker | None) -> Path:
    mqtt = (f'[mqtt]\nenabled = true\nport = {broker.port}\nprefix = "soak"\nreconnect_max_s = 2.0\n'
            if broker else "")
    cfg = tmp / "soak.toml"
    cfg.write_text(f"""
[[cameras]]
id = "gate"
source = "{clip}"
type = "file"
loop = true
fps_max = 10.0

[reader]
type = "sdk"
url = "{server.url}"
rate_per_s = 2.0
backoff_max_s = 5.0
usage_poll_s = 60.0

[rules]
allow = [{{ plate = "AB12 CDE", label = "soak" }}]

[decision]
pass_window_s = 2.0
rearm_s = 0.0  # the loop brings the same plates back: each pass is an event

[relay]
type = "serial"
port = "{relay_port}"
pulse_s = 0.5
cooldown_s = 0.0

[storage]
state_dir = "{tmp / 'state'}"

[status]
port = {status_port}
mqtt_interval_s = 10.0
{mqtt}""")
    return cfg


def run(minutes: float, interval_s: float, outage_every_s: float, outage_s: float) -> list[dict[str, Any]]:
    tmp = Path(tempfile.mkdtemp(prefix="plate-agent-soak-"))
    clip = tmp / "gate.mp4"
    # a car every ~5 s; the clip loops, so the agent sees vehicles for as long as it runs
    write_clip(SceneSpec(plates=PLATES, lead_in_s=1.0, drive_in_s=1.2, stop_s=1.0, drive_out_s=0.8,
                         gap_s=1.5, clock_overlay=True, noise_sigma=2.0), clip)
    server = PRServer(token=None).start()
    texts = itertools.cycle(p.replace(" ", "") for p in PLATES)
    server.plate_for = lambda rec: next(texts)
    relay = LcusEmulator()
    broker = None
    if shutil.which("mosquitto"):
        (tmp / "mosquitto").mkdir()
        broker = Broker(tmp / "mosquitto")
        broker.start()
    status_port = free_port()
    cfg = write_config(tmp, clip, server, relay.port, status_port, broker)
    log = open(tmp / "agent.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "agent", "run", "-c", str(cfg)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=log)
    samples: list[dict[str, Any]] = []
    t0 = time.monotonic()
    next_outage = t0 + outage_every_s
    try:
        time.sleep(5.0)  # start-up
        while True:
            now = time.monotonic()
            if outage_every_s > 0 and now >= next_outage:
                server.outage = "502"
                time.sleep(outage_s)
                server.outage = None
                next_outage = time.monotonic() + outage_every_s
            if proc.poll() is not None:
                raise SystemExit(f"agent exited with {proc.returncode}; log: {tmp / 'agent.log'}")
            st = get_status(status_port)
            row = {"t_s": round(time.monotonic() - t0), **proc_sample(proc.pid), "events": st["events"],
                   "reads": st["reader"].get("reads"), "outbox": st["reader"]["outbox"]["depth"],
                   "pulses": st["relay"].get("pulses"), "ok": st["ok"]}
            samples.append(row)
            print("  ".join(f"{k}={v}" for k, v in row.items()), flush=True)
            if time.monotonic() - t0 >= minutes * 60:
                break
            time.sleep(max(0.0, interval_s - (time.monotonic() - now)))
    finally:
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        if proc.poll() is None:
            proc.kill()
        log.close()
        server.close()
        relay.close()
        if broker:
            broker.stop()
    errors = [ln for ln in (tmp / "agent.log").read_text().splitlines() if " ERROR " in ln or "Traceback" in ln]
    print(f"agent exit {proc.returncode}; ERROR lines in the log: {len(errors)}; log at {tmp / 'agent.log'}")
    for ln in errors[:10]:
        print("  " + ln)
    return samples


def report(samples: list[dict[str, Any]], warmup_s: float) -> None:
    print("\n| t (min) | RSS (MB) | FDs | threads | events | reads | outbox | pulses |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    step = max(1, len(samples) // 15)
    for s in samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else []):
        print(f"| {s['t_s'] / 60:.1f} | {s['rss_kb'] / 1024:.1f} | {s['fds']} | {s['threads']} | {s['events']} "
              f"| {s['reads']} | {s['outbox']} | {s['pulses']} |")
    base = next((s for s in samples if s["t_s"] >= warmup_s), samples[0])
    last = samples[-1]
    after = [s for s in samples if s["t_s"] >= base["t_s"]]
    growth = (last["rss_kb"] - base["rss_kb"]) / 1024
    peak = max(s["rss_kb"] for s in samples) / 1024
    print(f"\nRSS growth after {base['t_s'] / 60:.1f} min warm-up: {growth:+.1f} MB "
          f"(first sample {samples[0]['rss_kb'] / 1024:.1f} MB, peak {peak:.1f} MB)")
    for key in ("fds", "threads"):
        lo, hi = min(s[key] for s in after), max(s[key] for s in after)
        print(f"{key}: {base[key]} -> {last[key]} (range after warm-up {lo}..{hi})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--interval-s", type=float, default=30.0, help="seconds between samples")
    ap.add_argument("--warmup-s", type=float, default=120.0, help="growth is measured from here")
    ap.add_argument("--outage-every-s", type=float, default=300.0, help="a 502 outage this often (0 = never)")
    ap.add_argument("--outage-s", type=float, default=30.0)
    ap.add_argument("--json", help="also write the samples here")
    args = ap.parse_args()
    samples = run(args.minutes, args.interval_s, args.outage_every_s, args.outage_s)
    report(samples, args.warmup_s)
    if args.json:
        Path(args.json).write_text(json.dumps(samples, indent=1))


if __name__ == "__main__":
    main()
