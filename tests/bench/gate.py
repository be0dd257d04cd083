"""The gate scenes end to end (tests/bench/scenes.py): each scene served once over RTSP, watched at
the same time by the agent with a 0-latency reader (SDK-like, no rate limit), the agent at the
cloud's trial rate (1 call/s, enforced by the contract server too) and the naive baseline. Every
contract server answers through the image-judging reader simulator (tests/bench/judge.py): an
upload is read only when it shows a whole, readable plate, whatever the time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from agent.tools import scene, scene_looks
from agent.crop import crop_region
from agent.tools.scene import (
    SceneSpec, StaticTruth, VehicleTruth, plate_boxes, plate_picture, static_layer, static_objects,
)
from agent.types import Box, Image
from tests.bench import judge as judge_mod
from tests.bench.clip import CACHE, BITRATE_KBPS, FrameLog, encode_h264
from tests.bench.e2e import CAMERA, CONFIG, ROOT, SETTLE_S, _pump, norm, parse_iso, serve, stop, wait_end, wait_stream
from tests.bench.gate_score import Call, score_agent, score_naive
from tests.bench.judge import KnownPlate, PlateJudge
from tests.prserver import PRServer, Recorded

CLOUD_RATE_PER_S = 1.0
TRUTH_VERSION = 1  # bump when ``Readable`` changes (the clip cache key covers the drawing and the judge)
CLIENTS = ("sdk", "cloud", "naive")


def known_plates(spec: SceneSpec) -> list[KnownPlate]:
    """Every plate the scene draws (the vehicles' and the parked cars'), with its picture."""
    texts = [v.plate for v in spec.vehicles] or list(spec.plates)
    pictures = [np.asarray(cv2.imread(p, cv2.IMREAD_COLOR), np.uint8) for p in spec.plate_images]
    out = [KnownPlate(t, functools.partial(plate_picture, t, picture=pictures[k] if k < len(pictures) else None))
           for k, t in enumerate(texts)]
    return out + [KnownPlate(p.plate, functools.partial(plate_picture, p.plate))
                  for p in spec.parked if p.kind == "car" and p.plate]


def make_judge(spec: SceneSpec) -> PlateJudge:
    return PlateJudge(known_plates(spec), min_width_px=spec.readable_plate_px)


def agent_crop(img: Image, box: tuple[int, int, int, int]) -> Image:
    """The crop the agent would send for a plate box (the default ``[crop]``), through JPEG."""
    h, w = img.shape[:2]
    r = crop_region(Box(*box), w, h, "plate", 0.25)
    ok, buf = cv2.imencode(".jpg", img[r.y1 : r.y2, r.x1 : r.x2], [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return np.asarray(cv2.imdecode(buf, cv2.IMREAD_COLOR), np.uint8)


class Readable:
    """While the clip is encoded: the first frame each vehicle's plate is whole in view, at least
    ``readable_plate_px`` wide, and read by the simulator from the crop the agent would send."""

    def __init__(self, spec: SceneSpec, truths: list[VehicleTruth]) -> None:
        self.judge = make_judge(spec)
        self.truths = truths
        self.boxes = plate_boxes(spec)
        self.w, self.h, self.min_px = spec.width, spec.height, spec.readable_plate_px
        for t in truths:
            t.readable_frame = -1

    def __call__(self, i: int, img: Image) -> None:
        for t, boxes in zip(self.truths, self.boxes, strict=True):
            b = boxes.get(i)
            if t.readable_frame >= 0 or b is None or b[2] - b[0] < self.min_px:
                continue
            if b[0] < 0 or b[1] < 0 or b[2] > self.w or b[3] > self.h:
                continue
            if any(norm(v.text) == norm(t.plate) for v in self.judge.read(agent_crop(img, b))):
                t.readable_frame = i


def gate_clip(spec: SceneSpec) -> tuple[Path, list[VehicleTruth]]:
    """The scene's H.264 clip and its ground truth, cached (the key covers the drawing and the judge)."""
    doc = json.dumps(dataclasses.asdict(spec), sort_keys=True, default=list)
    code = b"".join(Path(m.__file__).read_bytes() for m in (scene, scene_looks, judge_mod))  # type: ignore[arg-type]
    key = hashlib.sha256(f"{doc}|{BITRATE_KBPS}|{TRUTH_VERSION}|".encode() + code).hexdigest()[:16]
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"gate-{key}.mp4"
    truth_path = path.with_suffix(".json")
    if path.exists() and truth_path.exists():
        return path, [VehicleTruth(**v) for v in json.loads(truth_path.read_text())["vehicles"]]
    tmp = path.with_suffix(".part.mp4")
    holder: list[Readable] = []

    def on_frame(i: int, img: Image) -> None:
        holder[0](i, img)

    truths = encode_h264(spec, tmp, on_frame=on_frame, on_truths=lambda ts: holder.append(Readable(spec, ts)))
    truth_path.write_text(json.dumps({"spec": dataclasses.asdict(spec),
                                      "vehicles": [dataclasses.asdict(v) for v in truths]}, indent=1))
    tmp.rename(path)
    return path, truths


class StaticLocator:
    """Where an uploaded crop lies among the scene's static objects: it is matched (at its own size)
    against the scene without vehicles; a crop that shows a vehicle does not match there."""

    def __init__(self, spec: SceneSpec, objects: list[StaticTruth], min_score: float = 0.8) -> None:
        view = static_layer(spec)
        plates = [tuple(o.plate_box) for o in objects if o.plate_box]
        if spec.night:
            view = scene_looks.night(view, spec.night, [], plates)  # type: ignore[arg-type]
        if spec.rain:
            view = scene_looks.rain(view, np.zeros(view.shape[:2], np.uint8), spec.rain)
        self.view = np.asarray(cv2.cvtColor(view, cv2.COLOR_BGR2GRAY), np.uint8)
        self.objects = objects
        self.min_score = min_score

    def locate(self, image: Image) -> int | None:
        """Index of the static object the crop shows, or None."""
        if not self.objects:
            return None
        g = np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image, np.uint8)
        vh, vw = self.view.shape
        if g.shape[0] > vh // 2 or g.shape[1] > vw // 2 or g.shape[0] < 8 or g.shape[1] < 8:
            return None  # a whole frame (the naive script) or a speck: not an upload of one object
        res = cv2.matchTemplate(self.view, g, cv2.TM_CCOEFF_NORMED)
        _, score, _, (x, y) = cv2.minMaxLoc(res)
        if score < self.min_score:
            return None
        cx, cy = x + g.shape[1] / 2, y + g.shape[0] / 2
        for k, o in enumerate(self.objects):
            x1, y1, x2, y2 = o.box
            mx, my = 0.1 * (x2 - x1), 0.1 * (y2 - y1)
            if x1 - mx <= cx <= x2 + mx and y1 - my <= cy <= y2 + my:
                return k
        return None


@dataclass
class SimReader:
    """One contract server answering through the simulator; records every call for the score."""

    client: str
    judge: PlateJudge
    locator: StaticLocator
    frames: FrameLog
    rate_per_s: float = 0.0
    calls: list[Call] = field(default_factory=list)
    server: PRServer | None = None

    def start(self) -> SimReader:
        self.server = PRServer(token=None, rate_per_s=self.rate_per_s)
        self.server.read_image = self._read
        self.server.start()
        return self

    def _read(self, rec: Recorded, image: Any) -> list[str]:
        t0 = time.monotonic()
        texts = [norm(v.text) for v in self.judge.read(image)]
        judge_s = time.monotonic() - t0
        # for the score only (the answer above never depends on time): which frame, which object
        stamp = (rec.fields.get("timestamp") or [""])[0]
        captured = parse_iso(stamp) if stamp else time.time()
        static = self.locator.locate(image)
        self.calls.append(Call(self.client, captured, self.frames.load().frame_at(captured), texts, static,
                               (image.shape[1], image.shape[0]), round(judge_s, 4)))
        return texts

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


@dataclass
class Client:
    name: str
    reader: SimReader
    proc: subprocess.Popen[str]
    lines: list[tuple[float, str]]
    pump: threading.Thread
    relay: Any = None
    work: Path | None = None


def _start_agent(name: str, url: str, reader: SimReader, allow: list[str], work: Path,
                 backend: str = "auto", idle_keyframes: bool = True) -> Client:
    from tests.sinks.lcus import LcusEmulator

    relay = LcusEmulator()
    assert reader.server is not None
    cfg = CONFIG.format(cameras=CAMERA.format(n=1, url=url, backend=backend,
                                                   idle_keyframes=str(idle_keyframes).lower()), api=reader.server.url,
                        rate=reader.rate_per_s,
                        allow=", ".join(f'{{plate = "{p}"}}' for p in allow), relay_port=relay.port,
                        mqtt="false", mqtt_port=1883, state=work / f"state-{name}")
    (work / f"{name}.toml").write_text(cfg)
    argv = [sys.executable, "-m", "tests.bench.agent_proc", str(work / f"{name}.toml")]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=open(work / f"{name}.log", "w"),  # noqa: SIM115
                            text=True)
    lines: list[tuple[float, str]] = []
    pump = threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True)
    pump.start()
    return Client(name, reader, proc, lines, pump, relay, work)


def _start_naive(url: str, reader: SimReader) -> Client:
    assert reader.server is not None
    argv = [sys.executable, "-m", "tests.bench.naive", url, reader.server.url, "--every-s", "1.0"]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines: list[tuple[float, str]] = []
    pump = threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True)
    pump.start()
    return Client("naive", reader, proc, lines, pump)


def run_scene(name: str, spec: SceneSpec, clients: tuple[str, ...] = CLIENTS, backend: str = "auto",
              idle_keyframes: bool = True) -> dict[str, Any]:
    """One scene, every client watching the same stream at the same time; scored per client;
    ``backend``: the agents' camera backend (auto | pyav | opencv)."""
    clip, truths = gate_clip(spec)
    statics = static_objects(spec)
    judge, locator = make_judge(spec).warm(), StaticLocator(spec, statics)
    work = Path(tempfile.mkdtemp(prefix=f"bench-gate-{name}-"))
    server, frames = serve(clip, spec, work, "gate")
    allow = [v.plate for v in truths]
    started: list[Client] = []
    try:
        for kind in clients:
            rate = CLOUD_RATE_PER_S if kind == "cloud" else 0.0
            reader = SimReader(kind, judge, locator, frames, rate).start()
            started.append(_start_naive(server.url, reader) if kind == "naive"
                           else _start_agent(kind, server.url, reader, allow, work, backend,
                                                                      idle_keyframes))
        for c in started:
            wait_stream(frames, c.proc)
        last = max((t.exit_frame for t in truths), default=0)
        wait_end(frames, started[0].proc, timeout_s=last / spec.fps + spec.tail_s + 60)
        time.sleep(SETTLE_S)
        for c in started:
            if c.name == "naive":  # it ends with the stream, or is stopped
                with contextlib.suppress(subprocess.TimeoutExpired):
                    c.proc.wait(5)
            stop(c.proc)
            c.pump.join(5)
    finally:
        for c in started:
            stop(c.proc)  # a no-op when it has ended; stops it when the run was interrupted
            if c.relay is not None:
                c.relay.close()
            c.reader.close()
        server.close()
    frames.load()
    out: dict[str, Any] = {"scene": name, "frames": len(frames.sent), "vehicles": len(truths),
                           "statics": [dataclasses.asdict(s) for s in statics],
                           "truth": [dataclasses.asdict(t) for t in truths]}
    for c in started:
        if c.name == "naive":
            answers = [json.loads(ln) for _, ln in c.lines if ln.startswith("{")]
            out[c.name] = score_naive(truths, statics, frames, c.reader.calls, [a for a in answers if "end" not in a])
            continue
        events = [(at, json.loads(ln)) for at, ln in c.lines if ln.startswith("{")]
        relay_on = [f[0] + time.time() - time.monotonic() for f in c.relay.frames if f[2] == 1]
        out[c.name] = score_agent(truths, statics, frames, c.reader.calls, events, relay_on)
        stats = [json.loads(ln[6:]) for _, ln in c.lines if ln.startswith("STATS ")]
        out[c.name]["decoding"] = {cid: cam.get("decoding") for cid, cam in stats[-1].get("cameras", {}).items()
                                   } if stats else {}  # fmt: skip
        out[c.name]["log_tail"] = (work / f"{c.name}.log").read_text(errors="replace")[-800:]
    shutil.rmtree(work, ignore_errors=True)
    return out
