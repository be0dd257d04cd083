"""TOML configuration -> validated, frozen config objects; one section per pipeline stage.

Every key has a default (or is required) and bounds; unknown keys are errors. All problems are
collected and reported together, each naming its key path (``cameras[0].zones[1].polygon: ...``).
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .schema import build, deepcopy, opt

# ---------------------------------------------------------------- sections


@dataclass(frozen=True)
class Zone:
    """A polygon in normalised frame coordinates (0..1); include zones limit, exclude zones mask."""

    polygon: list[list[float]] = opt()
    kind: str = opt("include", choices=("include", "exclude"))


@dataclass(frozen=True)
class MotionConfig:
    enabled: bool = opt(True)
    downscale_width_px: int = opt(320, lo=64, hi=1920)
    threshold: int = opt(25, lo=1, hi=255)  # grey-level difference counted as change
    blur_px: int = opt(5, lo=0, hi=31)
    min_area_fraction: float = opt(0.003, lo=0.0, hi=1.0)  # of the (zoned) frame area
    learning_rate: float = opt(0.05, gt=0.0, hi=1.0)  # background model update per frame
    hold_s: float = opt(2.0, lo=0.0, hi=60.0)  # keep the gate open after motion stops
    region_pad_fraction: float = opt(0.1, lo=0.0, hi=1.0)


@dataclass(frozen=True)
class DetectorConfig:
    type: str = opt("tflite", choices=("tflite",))
    model_path: str = opt("")  # "" = the bundled model
    score_min: float = opt(0.2, gt=0.0, hi=1.0)  # bundled model: see models/README.md
    iou_nms: float = opt(0.45, gt=0.0, hi=1.0)
    num_threads: int = opt(2, lo=1, hi=16)
    min_plate_width_px: int = opt(40, lo=1, hi=4096)
    roi: bool = opt(True)  # run on the motion region when it is small
    roi_max_fraction: float = opt(0.5, gt=0.0, hi=1.0)  # largest region (of frame area) for ROI mode


@dataclass(frozen=True)
class CropConfig:
    mode: str = opt("plate", choices=("plate", "vehicle"))
    pad_fraction: float = opt(0.25, lo=0.0, hi=5.0)
    jpeg_quality: int = opt(90, lo=30, hi=100)
    max_bytes: int = opt(3_000_000, lo=10_000, hi=3_000_000)
    save_dir: str = opt("")  # "" = do not keep crops on disk
    # which crops of a vehicle pass are uploaded (each upload is billed)
    max_uploads_per_pass: int = opt(2, lo=1, hi=20)
    min_quality_gain: float = opt(1.25, lo=1.0, hi=100.0)  # a re-upload must be this much better
    pass_gap_s: float = opt(2.0, gt=0.0, hi=600.0)  # unseen this long: the next sighting is a new pass


@dataclass(frozen=True)
class ReaderConfig:
    type: str = opt("none", choices=("none", "cloud", "sdk"))
    url: str = opt("")  # "" = the default for the type
    timeout_connect_s: float = opt(3.0, gt=0.0, hi=60.0)
    timeout_read_s: float = opt(10.0, gt=0.0, hi=120.0)
    rate_per_s: float = opt(1.0, lo=0.0, hi=100.0)  # 0 = unlimited (SDK); cloud trial 1, paid 8
    regions: list[str] = opt(factory=list)
    mmc: bool = opt(False)
    config: dict[str, Any] = opt(factory=dict)  # the API's `config` JSON (mode, threshold_d, ...)
    retries: int = opt(3, lo=0, hi=10)  # 5xx/timeout/connection retries of a fresh crop, then outbox
    backoff_initial_s: float = opt(0.5, gt=0.0, hi=60.0)  # first retry delay; doubles, with jitter
    backoff_max_s: float = opt(30.0, gt=0.0, hi=3600.0)  # also the longest wait between outage probes
    forbidden_backoff_s: float = opt(300.0, gt=0.0, hi=86400.0)  # pause after a 403
    usage_poll_s: float = opt(900.0, lo=0.0, hi=86400.0)  # 0 = never
    queue_size: int = opt(32, lo=1, hi=10_000)  # crops waiting in memory; more are dropped and counted


SCHEDULE_RE = (
    r"^$|^\s*(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)(?:-(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun))?(?:,|\s+))*"
    r"\d{1,2}:\d{2}-\d{1,2}:\d{2}(?:\s*;\s*.+)?$"
)
DATE_RE = r"^$|^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2})?)?$"


@dataclass(frozen=True)
class RuleEntry:
    plate: str = opt(pattern=r"^[A-Za-z0-9 \-]{1,16}$")
    label: str = opt("")
    cameras: list[str] = opt(factory=list)  # [] = every camera
    valid_from: str = opt("", pattern=DATE_RE)  # local date or date-time; "" = always
    valid_until: str = opt("", pattern=DATE_RE)  # inclusive; a bare date covers the whole day
    schedule: str = opt("", pattern=SCHEDULE_RE)  # "Mon-Fri 07:00-19:00; Sat 08:00-12:00", local time


@dataclass(frozen=True)
class RulesConfig:
    allow: list[RuleEntry] = opt(factory=list)
    deny: list[RuleEntry] = opt(factory=list)  # deny beats allow
    file: str = opt("")  # CSV: plate,label,list,valid_from,valid_until,schedule,cameras
    reload_check_s: float = opt(2.0, lo=0.0, hi=3600.0)  # how often the file's mtime is checked
    match: str = opt("confusions", choices=("exact", "confusions", "fuzzy"))
    max_distance: int = opt(1, lo=0, hi=3)  # only for match = "fuzzy"
    min_score: float = opt(0.7, lo=0.0, hi=1.0)  # below: the read votes but cannot decide
    min_dscore: float = opt(0.5, lo=0.0, hi=1.0)  # below: not a plate, dropped
    require_vehicle: bool = opt(False)  # drop reads without a vehicle (plates on walls, posters)
    max_decision_age_s: float = opt(5.0, gt=0.0, hi=3600.0)  # older reads never open the gate
    pass_window_s: float = opt(10.0, gt=0.0, hi=600.0)  # a pass ends after this long unseen
    pass_max_distance: int = opt(2, lo=0, hi=4)  # edit distance for reads of one pass
    pass_box_grow: float = opt(1.0, lo=0.0, hi=10.0)  # detector-only: box growth for "same pass"
    update_min_gain: float = opt(0.1, lo=0.0, hi=1.0)  # read score gain that earns an update
    rearm_s: float = opt(60.0, lo=0.0, hi=86400.0)  # same plate after leaving: new event after this


@dataclass(frozen=True)
class MqttConfig:
    enabled: bool = opt(False)
    host: str = opt("127.0.0.1")
    port: int = opt(1883, lo=1, hi=65535)
    username: str = opt("")  # password from MQTT_PASSWORD or the mqtt_password credential
    client_id: str = opt("")  # "" = plate-agent-<hostname>
    prefix: str = opt("plate-agent", pattern=r"^[^#+]+$")
    keepalive_s: int = opt(30, lo=5, hi=3600)
    tls: bool = opt(False)
    ca_file: str = opt("")
    qos: int = opt(1, lo=0, hi=2)
    publish_crop: str = opt("none", choices=("none", "topic", "base64"))
    ha_discovery: bool = opt(False)
    discovery_prefix: str = opt("homeassistant")
    command_topic: bool = opt(False)  # accept "open" commands on <prefix>/<camera>/gate/set
    command_payload: str = opt("OPEN")
    reconnect_min_s: float = opt(1.0, gt=0.0, hi=3600.0)
    reconnect_max_s: float = opt(60.0, gt=0.0, hi=3600.0)


@dataclass(frozen=True)
class RelayConfig:
    type: str = opt("none", choices=("none", "gpio", "serial"))
    pin: str = opt("")  # gpio: BCM number or gpiozero pin name, e.g. "17" or "GPIO17"
    active_high: bool = opt(True)
    port: str = opt("")  # serial: device or pyserial URL (/dev/ttyUSB0, loop://)
    baud: int = opt(9600, lo=300, hi=921600)
    protocol: str = opt("lcus", choices=("lcus", "at", "raw"))
    channel: int = opt(1, lo=1, hi=16)
    on_bytes: str = opt("")  # raw protocol: hex, e.g. "A00101A2"
    off_bytes: str = opt("")
    pulse_s: float = opt(1.0, gt=0.0, hi=60.0)
    cooldown_s: float = opt(2.0, lo=0.0, hi=3600.0)
    max_on_s: float = opt(5.0, gt=0.0, hi=300.0)
    cameras: list[str] = opt(factory=list)  # [] = every camera


@dataclass(frozen=True)
class WebhookConfig:
    url: str = opt(pattern=r"^https?://\S+$")
    format: str = opt("json", choices=("json", "multipart"))
    timeout_s: float = opt(5.0, gt=0.0, hi=120.0)
    retries: int = opt(3, lo=0, hi=20)
    queue_size: int = opt(100, lo=1, hi=100_000)
    secret_header: str = opt("")  # header name; its value comes from secret_env
    secret_env: str = opt("WEBHOOK_SECRET", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    backoff_max_s: float = opt(30.0, gt=0.0, hi=3600.0)  # between retries, capped exponential


@dataclass(frozen=True)
class StorageConfig:
    state_dir: str = opt("")  # "" = $STATE_DIRECTORY, else ~/.local/state/plate-agent
    outbox_max_items: int = opt(1000, lo=1, hi=1_000_000)
    outbox_max_mb: float = opt(100.0, gt=0.0, hi=100_000.0)
    outbox_max_age_s: float = opt(86400.0, gt=0.0, hi=30 * 86400.0)


@dataclass(frozen=True)
class StatusConfig:
    enabled: bool = opt(True)
    bind: str = opt("127.0.0.1")
    port: int = opt(8787, lo=0, hi=65535)
    mqtt_interval_s: float = opt(60.0, lo=0.0, hi=86400.0)


@dataclass(frozen=True)
class CameraConfig:
    id: str = opt(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    source: str = opt()  # rtsp://..., /dev/video0, 0 (USB index) or a video file
    type: str = opt("auto", choices=("auto", "rtsp", "usb", "file"))
    fps_max: float = opt(10.0, gt=0.0, hi=120.0)  # frames processed per second at most
    idle_fps_max: float = opt(5.0, gt=0.0, hi=120.0)  # ... while nothing moves (capped by fps_max)
    width: int = opt(0, lo=0, hi=8192)  # usb: requested size, 0 = device default
    height: int = opt(0, lo=0, hi=8192)
    fps: float = opt(0.0, lo=0.0, hi=240.0)  # usb: requested rate, 0 = device default
    fourcc: str = opt("", pattern=r"^(|[A-Za-z0-9 ]{4})$")  # usb: e.g. "MJPG"
    rtsp_transport: str = opt("tcp", choices=("tcp", "udp"))
    open_timeout_s: float = opt(10.0, gt=0.0, hi=300.0)
    read_timeout_s: float = opt(5.0, gt=0.0, hi=300.0)  # watchdog: a longer read reopens
    reconnect_max_s: float = opt(30.0, gt=0.0, hi=3600.0)
    realtime: bool = opt(True)  # file: pace frames at the clip's fps
    loop: bool = opt(False)  # file: start again at the end
    zones: list[Zone] = opt(factory=list)
    # per-camera overrides of the global sections, resolved at load time
    motion: MotionConfig = opt(factory=MotionConfig)
    detector: DetectorConfig = opt(factory=DetectorConfig)
    crop: CropConfig = opt(factory=CropConfig)
    reader: ReaderConfig = opt(factory=ReaderConfig)


# keys a [cameras.<section>] table may override; the rest are agent-wide
PER_CAMERA = {
    "motion": None,  # every key
    "detector": {"score_min", "min_plate_width_px", "roi", "roi_max_fraction"},
    "crop": {"mode", "pad_fraction", "jpeg_quality"},
    "reader": {"regions", "mmc", "config"},
}


@dataclass(frozen=True)
class Config:
    cameras: list[CameraConfig] = opt(factory=list)
    motion: MotionConfig = opt(factory=MotionConfig)
    detector: DetectorConfig = opt(factory=DetectorConfig)
    crop: CropConfig = opt(factory=CropConfig)
    reader: ReaderConfig = opt(factory=ReaderConfig)
    rules: RulesConfig = opt(factory=RulesConfig)
    mqtt: MqttConfig = opt(factory=MqttConfig)
    relay: RelayConfig = opt(factory=RelayConfig)
    webhooks: list[WebhookConfig] = opt(factory=list)
    storage: StorageConfig = opt(factory=StorageConfig)
    status: StatusConfig = opt(factory=StatusConfig)
    log_level: str = opt("info", choices=("debug", "info", "warning", "error"))
    path: str = ""  # where it was loaded from (not a key)


# ---------------------------------------------------------------- cross-key checks


def _check_section(obj: Any, path: str, errors: list[str]) -> None:
    """Checks that span several keys of one section."""
    p = f"{path}." if path else ""
    if isinstance(obj, Zone):
        if len(obj.polygon) < 3:
            errors.append(f"{p}polygon: polygon needs >= 3 points")
        for i, pt in enumerate(obj.polygon):
            if len(pt) != 2 or not all(0.0 <= c <= 1.0 for c in pt):
                errors.append(f"{p}polygon[{i}]: must be [x, y] with 0 <= x, y <= 1")
    elif isinstance(obj, RelayConfig):
        if obj.type == "gpio" and not obj.pin:
            errors.append(f"{p}pin: required when type = \"gpio\"")
        if obj.type == "serial" and not obj.port:
            errors.append(f"{p}port: required when type = \"serial\"")
        if obj.type == "serial" and obj.protocol == "raw":
            for key in ("on_bytes", "off_bytes"):
                if not re.fullmatch(r"(?:[0-9A-Fa-f]{2})+", getattr(obj, key).replace(" ", "")):
                    errors.append(f"{p}{key}: hex bytes required for protocol = \"raw\"")
        if obj.pulse_s > obj.max_on_s:
            errors.append(f"{p}pulse_s: must be <= max_on_s ({obj.max_on_s})")
    elif isinstance(obj, MqttConfig):
        if obj.ca_file and not obj.tls:
            errors.append(f"{p}ca_file: set tls = true to use a CA file")
        if obj.reconnect_min_s > obj.reconnect_max_s:
            errors.append(f"{p}reconnect_min_s: must be <= reconnect_max_s ({obj.reconnect_max_s})")
        if obj.command_topic and not obj.command_payload:
            errors.append(f"{p}command_payload: required when command_topic = true")
    elif isinstance(obj, RuleEntry):
        if obj.valid_from and obj.valid_until and obj.valid_from > obj.valid_until:
            errors.append(f"{p}valid_until: must not be before valid_from ({obj.valid_from})")


def _resolve_cameras(doc: dict[str, Any], errors: list[str]) -> None:
    """Merge each camera's overrides into a copy of the global section (in place on ``doc``)."""
    cams = doc.get("cameras", [])
    if not isinstance(cams, list):
        return
    for i, cam in enumerate(cams):
        if not isinstance(cam, dict):
            continue
        for section, allowed in PER_CAMERA.items():
            glob = doc.get(section, {})
            over = cam.get(section, {})
            if not isinstance(glob, dict) or not isinstance(over, dict):
                if not isinstance(over, dict):
                    errors.append(f"cameras[{i}].{section}: must be a table")
                    cam.pop(section, None)
                continue
            if allowed is not None:
                for key in over:
                    if key not in allowed:
                        errors.append(
                            f"cameras[{i}].{section}.{key}: cannot be set per camera"
                            f" (allowed: {', '.join(sorted(allowed))})"
                        )
            cam[section] = {**glob, **{k: v for k, v in over.items() if allowed is None or k in allowed}}


def parse(doc: dict[str, Any], path: str = "") -> Config:
    """Validate a parsed TOML document; raise ConfigError listing every problem."""
    errors: list[str] = []
    doc = deepcopy(doc)
    _resolve_cameras(doc, errors)
    cfg = build(Config, doc, "", errors, _check_section)
    if cfg is not None:
        ids = [c.id for c in cfg.cameras if c is not None]
        for dup in sorted({x for x in ids if ids.count(x) > 1}):
            errors.append(f"cameras: duplicate id {dup!r}")
        for key, listed in (("relay.cameras", cfg.relay.cameras),):
            unknown = [x for x in listed if isinstance(x, str) and x not in ids]  # others: reported
            if unknown:
                errors.append(f"{key}: unknown camera id(s) {', '.join(unknown)}")
    if errors or cfg is None:
        raise ConfigError(errors or ["invalid configuration"])
    return dataclasses.replace(cfg, path=path)


def load(path: str | os.PathLike[str]) -> Config:
    """Read and validate a TOML file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"{p}: cannot read: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"{p}: not UTF-8 text: {err.reason}") from err
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{p}: invalid TOML: {err}") from err
    return parse(doc, str(p))


# ---------------------------------------------------------------- secrets


def secret(name: str, environ: typing.Mapping[str, str] | None = None) -> str | None:
    """A secret from the environment (``NAME``) or a systemd credential file.

    The credential may be named ``NAME`` or ``name`` in ``$CREDENTIALS_DIRECTORY``. Values are
    stripped of surrounding whitespace; an empty value counts as unset. Never log the result.
    """
    env = os.environ if environ is None else environ
    value = env.get(name, "").strip()
    if value:
        return value
    cred_dir = env.get("CREDENTIALS_DIRECTORY", "")
    if cred_dir:
        for fname in (name, name.lower()):
            try:
                value = (Path(cred_dir) / fname).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError):
                continue
            if value:
                return value
    return None


def state_dir(cfg: StorageConfig, environ: typing.Mapping[str, str] | None = None) -> Path:
    """Where durable state (outboxes) lives: config, then systemd's StateDirectory, then ~."""
    env = os.environ if environ is None else environ
    if cfg.state_dir:
        return Path(cfg.state_dir)
    if env.get("STATE_DIRECTORY"):
        return Path(env["STATE_DIRECTORY"].split(":")[0])
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "plate-agent"


__all__ = [
    "CameraConfig",
    "Config",
    "CropConfig",
    "DetectorConfig",
    "MotionConfig",
    "MqttConfig",
    "ReaderConfig",
    "RelayConfig",
    "RuleEntry",
    "RulesConfig",
    "StatusConfig",
    "StorageConfig",
    "WebhookConfig",
    "Zone",
    "load",
    "parse",
    "secret",
    "state_dir",
]
