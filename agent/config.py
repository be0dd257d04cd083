"""TOML configuration -> validated, frozen config objects; one section per pipeline stage.

Every key has a default (or is required) and bounds; unknown keys are errors. All problems are
collected and reported together, each naming its key path (``cameras[0].zones[1].polygon: ...``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import ssl
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigError
from .rulebook import RuleEntry, check_entry, read_rules_file
from .schema import (
    build,
    check_json,
    deepcopy,
    inherited_from_global,
    merge_overrides,
    move_keys,
    not_a_key,
    old_name,
    opt,
)

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------- kinds

ZoneKind = Literal["include", "exclude"]
DetectorType = Literal["tflite"]
CropMode = Literal["plate", "vehicle"]
ReaderType = Literal["none", "cloud", "sdk"]
MatchMode = Literal["exact", "confusions", "fuzzy"]
PublishCrop = Literal["none", "topic", "base64"]
RelayType = Literal["none", "gpio", "serial"]
RelayProtocol = Literal["lcus", "at", "raw"]
WebhookFormat = Literal["json", "multipart"]
SourceType = Literal["auto", "rtsp", "usb", "file"]
Direction = Literal["any", "approaching"]  # which vehicles are paid for / may open the gate
RtspTransport = Literal["tcp", "udp"]
Decoder = Literal["software", "v4l2m2m", "nvdec"]
SourceBackend = Literal["auto", "pyav", "opencv"]
LogLevel = Literal["debug", "info", "warning", "error"]

# ---------------------------------------------------------------- sections

# MQTT wildcards cannot be published to, an empty level is a typo ("a//b"), "$" topics are the broker's
TOPIC_RE = r"(?=[^\n]{1,200}$)(?!\$)[^#+/\x00\n]+(?:/[^#+/\x00\n]+)*/?"
TOPIC_EXPECT = "a topic prefix: levels separated by /, none empty, without + or #, not starting with $"
GPIO, SERIAL = ("type", ("gpio",)), ("type", ("serial",))
# a device, or a URL of a pyserial protocol handler (serial.urlhandler.protocol_<scheme>)
PORT_RE = r"(?!.*://).*|(?:loop|socket|rfc2217|spy|hwgrep|alt|cp2110)://.*"
PORT_EXPECT = "a serial device or a pyserial URL (loop://, socket://, rfc2217://, spy://, hwgrep://, alt://)"
PIN_EXPECT = "a GPIO of the Raspberry Pi header: BCM 0-27 or a gpiozero name (GPIO17, BOARD11, J8:11)"
_HEADER_GPIO = (3, 5, 7, 8, 10, 11, 12, 13, 15, 16, 18, 19, 21, 22, 23, 24, 26, 27, 28, 29, 31, 32, 33, 35, 36, 37,
                38, 40)  # physical pins that are GPIOs (the rest are power and ground)
PIN_RE = (
    rf"^(?:GPIO|BCM)?(?:{'|'.join(map(str, range(28)))})$"
    rf"|^(?:BOARD|J8:)(?:{'|'.join(map(str, _HEADER_GPIO))})$"
    rf"|^WPI(?:{'|'.join(map(str, [*range(17), *range(21, 32)]))})$"
)


@dataclass(frozen=True)
class Zone:
    """A polygon in normalised frame coordinates (0..1); include zones limit, exclude zones mask."""

    polygon: list[list[float]] = opt()
    kind: ZoneKind = opt("include")


@dataclass(frozen=True)
class MotionConfig:
    enabled: bool = opt(True)
    downscale_width_px: int = opt(320, lo=64, hi=1920)
    threshold: int = opt(25, lo=1, hi=255)  # grey-level difference counted as change
    blur_px: int = opt(5, lo=0, hi=31)
    min_area_fraction: float = opt(0.003, lo=0.0, hi=1.0)  # of the (zoned) frame area
    learning_rate: float = opt(0.05, gt=0.0, hi=1.0)  # background update per frame (0.2 s apart at most)
    hold_s: float = opt(2.0, lo=0.0, hi=60.0)  # keep the gate open after motion stops
    region_pad_fraction: float = opt(0.1, lo=0.0, hi=1.0)


@dataclass(frozen=True)
class DetectorConfig:
    type: DetectorType = opt("tflite")
    model_path: str = opt("")  # "" = the bundled model
    score_min: float = opt(0.2, gt=0.0, hi=1.0)  # bundled model: see models/README.md
    iou_nms: float = opt(0.45, gt=0.0, hi=1.0)
    num_threads: int = opt(2, lo=1, hi=16)
    # loaded models shared by all cameras (each ~27 MB); 0 = one per num_threads cores
    instances: int = opt(1, lo=0, hi=8)
    min_plate_width_px: int = opt(40, lo=1, hi=4096)
    roi: bool = opt(True)  # run on the motion region when it is small
    roi_max_fraction: float = opt(0.5, gt=0.0, hi=1.0)  # largest region (of frame area) for ROI mode


@dataclass(frozen=True)
class CropConfig:
    mode: CropMode = opt("plate")
    pad_fraction: float = opt(0.25, lo=0.0, hi=5.0)
    jpeg_quality: int = opt(90, lo=30, hi=100)
    max_bytes: int = opt(3_000_000, lo=10_000, hi=3_000_000)
    save_dir: str = opt("")  # "" = do not keep crops on disk
    save_max_files: int = opt(5000, lo=1, hi=10_000_000)  # then the oldest crops are deleted
    save_max_mb: float = opt(200.0, lo=10.0, hi=1_000_000.0)


@dataclass(frozen=True)
class UploadConfig:
    """Which crops of a vehicle pass are uploaded (each upload is billed)."""

    max_uploads_per_pass: int = opt(2, lo=1, hi=20)
    min_quality_gain: float = opt(1.25, lo=1.0, hi=100.0)  # the same view again: this much better
    pass_gap_s: float = opt(2.0, gt=0.0, hi=600.0)  # unseen this long: the next sighting is a new pass
    whole_wait_s: float = opt(1.0, lo=0.0, hi=60.0)  # a cut or blurred plate (or, after an empty answer,
    # the same view again) waits this long for a good one
    edge_margin_px: int = opt(8, lo=0, hi=200)  # a box this close to the frame edge is cut
    min_sharpness: float = opt(25.0, lo=0.0, hi=100_000.0)  # variance of the Laplacian of the plate
    static_after_s: float = opt(2.0, gt=0.0, hi=3600.0)  # a plate still this long is a static object
    static_ttl_s: float = opt(86400.0, gt=0.0, hi=30 * 86400.0)  # then it may be read once again
    still_tolerance: float = opt(0.2, gt=0.0, hi=5.0)  # plate widths a still box may jitter
    look_max_diff: float = opt(0.05, gt=0.0, hi=1.0)  # thumbnails this close look the same
    pay_for: Direction = opt("any")  # approaching: leaving vehicles are not read
    direction_wait_s: float = opt(0.0, lo=0.0, hi=10.0)  # wait this long for the direction before a read


@dataclass(frozen=True)
class ReaderConfig:
    type: ReaderType = opt("none")
    url: str = opt("", pattern=r"^(?:$|https?://\S+$)", expect="an http(s) URL")  # "" = the type's default
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


@dataclass(frozen=True)
class RulesConfig:
    allow: list[RuleEntry] = opt(factory=list)
    deny: list[RuleEntry] = opt(factory=list)  # deny beats allow
    file: str = opt("")  # CSV: plate,label,list,valid_from,valid_until,schedule,cameras
    reload_check_s: float = opt(2.0, lo=0.0, hi=3600.0)  # how often the file's mtime is checked
    match: MatchMode = opt("confusions")
    max_distance: int = opt(1, lo=0, hi=3)  # only for match = "fuzzy"


@dataclass(frozen=True)
class DecisionConfig:
    """Reads -> one decision per vehicle pass (decide.py)."""

    min_score: float = opt(0.7, lo=0.0, hi=1.0)  # below: the read votes but cannot decide
    min_dscore: float = opt(0.5, lo=0.0, hi=1.0)  # below: not a plate, dropped
    require_vehicle: bool = opt(False)  # drop reads without a vehicle (plates on walls, posters)
    max_decision_age_s: float = opt(5.0, gt=0.0, hi=3600.0)  # older reads never open the gate
    pass_window_s: float = opt(10.0, gt=0.0, hi=600.0)  # a pass ends after this long unseen
    pass_max_distance: int = opt(2, lo=0, hi=4)  # edit distance for reads of one pass
    pass_box_grow: float = opt(1.0, lo=0.0, hi=10.0)  # detector-only: box growth for "same pass"
    update_min_gain: float = opt(0.1, lo=0.0, hi=1.0)  # read score gain that earns an update
    rearm_s: float = opt(60.0, lo=0.0, hi=86400.0)  # same plate after leaving: new event after this
    open_for: Direction = opt("any")  # approaching: only approaching vehicles open the gate


@dataclass(frozen=True)
class MqttConfig:
    enabled: bool = opt(False)
    host: str = opt("127.0.0.1", pattern=r"^\S+$", expect="a host name or address")
    port: int = opt(1883, lo=1, hi=65535)
    username: str = opt("")  # password from MQTT_PASSWORD or the mqtt_password credential
    client_id: str = opt("")  # "" = plate-agent-<hostname>
    prefix: str = opt("plate-agent", pattern=TOPIC_RE, expect=TOPIC_EXPECT)
    keepalive_s: int = opt(30, lo=5, hi=3600)
    tls: bool = opt(False)
    ca_file: str = opt("")
    qos: int = opt(1, lo=0, hi=2)
    publish_crop: PublishCrop = opt("none")
    ha_discovery: bool = opt(False)
    discovery_prefix: str = opt("homeassistant", pattern=TOPIC_RE, expect=TOPIC_EXPECT)
    command_topic: bool = opt(False)  # accept "open" commands on <prefix>/<camera>/gate/set
    command_payload: str = opt("OPEN")
    insecure_command: bool = opt(False)  # accept them without TLS and a username (anyone on the broker)
    command_min_interval_s: float = opt(5.0, lo=2.0, hi=3600.0)  # between two accepted open commands
    queue_max_items: int = opt(100, lo=1, hi=10_000)  # messages held in memory for the broker; the
    queue_max_mb: float = opt(8.0, gt=0.0, hi=1000.0)  # rest wait in the outbox on disk
    reconnect_min_s: float = opt(1.0, gt=0.0, hi=3600.0)
    reconnect_max_s: float = opt(60.0, gt=0.0, hi=3600.0)


@dataclass(frozen=True)
class RelayConfig:
    type: RelayType = opt("none")
    pin: str = opt("", pattern=PIN_RE, when=GPIO, expect=PIN_EXPECT)  # "17", "GPIO17", "BOARD11"
    active_high: bool = opt(True, when=GPIO)
    port: str = opt("", pattern=PORT_RE, when=SERIAL, expect=PORT_EXPECT)  # /dev/ttyUSB0, loop://
    baud: int = opt(9600, lo=300, hi=921600, when=SERIAL)
    protocol: RelayProtocol = opt("lcus", when=SERIAL)
    channel: int = opt(1, lo=1, hi=16, when=SERIAL)
    on_bytes: str = opt("", when=("protocol", ("raw",)))  # hex, e.g. "A00101A2"
    off_bytes: str = opt("", when=("protocol", ("raw",)))
    pulse_s: float = opt(1.0, gt=0.0, hi=60.0)
    cooldown_s: float = opt(2.0, lo=0.0, hi=3600.0)
    max_on_s: float = opt(5.0, gt=0.0, hi=300.0)
    cameras: list[str] = opt(factory=list)  # [] = every camera


@dataclass(frozen=True)
class WebhookConfig:
    url: str = opt(pattern=r"^https?://\S+$", expect="an http(s) URL")
    format: WebhookFormat = opt("json")
    timeout_s: float = opt(5.0, gt=0.0, hi=120.0)
    retries: int = opt(3, lo=0, hi=20)
    queue_size: int = opt(100, lo=1, hi=100_000)
    # a header name; its value comes from secret_env
    secret_header: str = opt("", pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]*$", expect="an HTTP header name")
    secret_env: str = opt("WEBHOOK_SECRET", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    backoff_max_s: float = opt(30.0, gt=0.0, hi=3600.0)  # between retries, capped exponential


@dataclass(frozen=True)
class StorageConfig:
    state_dir: str = opt("")  # "" = $STATE_DIRECTORY, else ~/.local/state/plate-agent
    outbox_max_items: int = opt(1000, lo=1, hi=1_000_000)
    outbox_max_mb: float = opt(100.0, gt=0.0, hi=100_000.0)
    outbox_max_age_s: float = opt(86400.0, gt=0.0, hi=30 * 86400.0)


@dataclass(frozen=True)
class ClockConfig:
    # the wall clock is right from boot (an RTC board): dated and scheduled rules, and ages across
    # a reboot, need not wait for NTP to synchronise it
    trusted: bool = opt(False)


@dataclass(frozen=True)
class StatusConfig:
    enabled: bool = opt(True)
    bind: str = opt("127.0.0.1")
    port: int = opt(8787, lo=0, hi=65535)
    mqtt_interval_s: float = opt(60.0, lo=0.0, hi=86400.0)


@dataclass(frozen=True)
class HistoryConfig:
    """The event store: every event and paid read in sqlite in the state directory (history.py)."""

    enabled: bool = opt(True)
    quota_mb: float = opt(200.0, gt=0.0, hi=1_000_000.0)  # events, crops and reads together; oldest go first
    max_days: float = opt(30.0, gt=0.0, hi=3650.0)  # older events go (once the clock is synchronised)
    queue_size: int = opt(256, lo=1, hi=100_000)  # events waiting for the store's thread; more are dropped
    save_frames: bool = opt(False)  # also the full frame of each event's best read (~150 kB at 720p)


@dataclass(frozen=True)
class ConsoleConfig:
    """The web console (pages and the JSON API under /api/) on the status server's address (web/)."""

    enabled: bool = opt(True)
    password_env: str = opt("CONSOLE_PASSWORD", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")  # off loopback
    session_ttl_s: float = opt(43200.0, gt=0.0, hi=30 * 86400.0)  # a login lasts this long unused


@dataclass(frozen=True)
class CameraConfig:
    id: str = opt(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")
    source: str = opt(pattern=r".*\S.*", expect="a source")  # rtsp://..., /dev/video0, 0 (USB index) or a video file
    type: SourceType = opt("auto")
    fps_max: float = opt(10.0, gt=0.0, hi=120.0)  # frames processed per second at most
    idle_fps_max: float = opt(5.0, gt=0.0, hi=120.0)  # ... while nothing moves (capped by fps_max)
    width: int = opt(0, lo=0, hi=8192)  # usb: requested size, 0 = device default
    height: int = opt(0, lo=0, hi=8192)
    fps: float = opt(0.0, lo=0.0, hi=240.0)  # usb: requested rate, 0 = device default
    fourcc: str = opt("", pattern=r"^(|[A-Za-z0-9 ]{4})$")  # usb: e.g. "MJPG"
    rtsp_transport: RtspTransport = opt("tcp")
    # rtsp/file H.264: the board's hardware decoder through FFmpeg (Pi 4 v4l2m2m, Jetson nvdec);
    # software when the FFmpeg build lacks it
    decoder: Decoder = opt("software")
    # network streams: PyAV (its own FFmpeg; keyframes only while idle) or OpenCV; auto = PyAV when
    # installed. USB cameras and files always use OpenCV.
    backend: SourceBackend = opt("auto")
    # PyAV: while nothing moves, decode only keyframes (a car is seen at the next keyframe)
    idle_keyframes: bool = opt(True)
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
    upload: UploadConfig = opt(factory=UploadConfig)
    reader: ReaderConfig = opt(factory=ReaderConfig)


# keys a [cameras.<section>] table may override; the rest are agent-wide
PER_CAMERA = {
    "motion": None,  # every key
    "detector": {"score_min", "min_plate_width_px", "roi", "roi_max_fraction"},
    "crop": {"mode", "pad_fraction", "jpeg_quality"},
    "upload": {"pay_for", "direction_wait_s", "whole_wait_s", "edge_margin_px", "min_sharpness"},
    "reader": {"regions", "mmc", "config"},
}

# keys that moved to a table of their own; the old place works for one release, with a warning
MOVED = {"rules": ("decision", DecisionConfig), "crop": ("upload", UploadConfig)}


@dataclass(frozen=True)
class Config:
    cameras: list[CameraConfig] = opt(factory=list)
    motion: MotionConfig = opt(factory=MotionConfig)
    detector: DetectorConfig = opt(factory=DetectorConfig)
    crop: CropConfig = opt(factory=CropConfig)
    upload: UploadConfig = opt(factory=UploadConfig)
    reader: ReaderConfig = opt(factory=ReaderConfig)
    rules: RulesConfig = opt(factory=RulesConfig)
    decision: DecisionConfig = opt(factory=DecisionConfig)
    mqtt: MqttConfig = opt(factory=MqttConfig)
    relay: RelayConfig = opt(factory=RelayConfig)
    webhooks: list[WebhookConfig] = opt(factory=list)
    storage: StorageConfig = opt(factory=StorageConfig)
    clock: ClockConfig = opt(factory=ClockConfig)
    status: StatusConfig = opt(factory=StatusConfig)
    history: HistoryConfig = opt(factory=HistoryConfig)
    console: ConsoleConfig = opt(factory=ConsoleConfig)
    log_level: LogLevel = opt("info")
    path: str = not_a_key("")  # where it was loaded from
    warnings: tuple[str, ...] = not_a_key(())  # deprecated keys used, bad rules-file rows: already logged


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
        _check_relay(obj, p, errors)
    elif isinstance(obj, MqttConfig):
        if obj.ca_file and not obj.tls:
            errors.append(f"{p}ca_file: set tls = true to use a CA file")
        if obj.reconnect_min_s > obj.reconnect_max_s:
            errors.append(f"{p}reconnect_min_s: must be <= reconnect_max_s ({obj.reconnect_max_s})")
        _check_command(obj, p, errors)
    elif isinstance(obj, ReaderConfig):
        check_json(obj.config, f"{p}config", errors)
    elif isinstance(obj, RuleEntry):
        check_entry(obj, p, errors)


def _check_command(obj: MqttConfig, p: str, errors: list[str]) -> None:
    """The open command moves the barrier: only over TLS from a client the broker knows by name."""
    if obj.command_topic and not obj.command_payload:
        errors.append(f"{p}command_payload: required when command_topic = true")
    if obj.insecure_command and not obj.command_topic:
        errors.append(f"{p}insecure_command: only with command_topic = true")
    if obj.command_topic and not obj.insecure_command:
        why = "(or insecure_command = true: then anyone who can reach the broker can open the gate)"
        if not obj.tls:
            errors.append(f"{p}command_topic: needs tls = true {why}")
        if not obj.username:
            errors.append(f"{p}command_topic: needs a username (the broker's ACL decides who may publish "
                          f"to the command topic) {why}")


def hex_frame(text: str) -> bytes | None:
    """A raw relay frame written as hex byte pairs, spaces allowed ("A0 01 01 A2"); None if it is not one."""
    compact = text.replace(" ", "")
    if not re.fullmatch(r"(?:[0-9A-Fa-f]{2})+", compact):
        return None
    return bytes.fromhex(compact)


def _check_relay(obj: RelayConfig, p: str, errors: list[str]) -> None:
    if obj.type == "gpio" and not obj.pin:
        errors.append(f"{p}pin: required when type = \"gpio\"")
    if obj.type == "serial" and not obj.port:
        errors.append(f"{p}port: required when type = \"serial\"")
    if obj.type == "serial" and obj.protocol == "raw":
        for key in ("on_bytes", "off_bytes"):
            if hex_frame(getattr(obj, key)) is None:
                errors.append(f"{p}{key}: hex bytes required for protocol = \"raw\"")
    if obj.pulse_s > obj.max_on_s:
        errors.append(f"{p}pulse_s: must be <= max_on_s ({obj.max_on_s})")


def parse(doc: dict[str, Any], path: str = "") -> Config:
    """Validate a parsed TOML document; raise ConfigError listing every problem.

    Keys in their pre-``[decision]``/``[upload]`` place still work: each is logged as a warning
    and kept in ``Config.warnings``.
    """
    errors: list[str] = []
    warnings: list[str] = []
    doc = deepcopy(doc)
    moved = move_keys(doc, MOVED, errors, warnings)
    cams = doc.get("cameras")
    for i, cam in enumerate(cams if isinstance(cams, list) else []):
        if isinstance(cam, dict):  # [cameras.crop] and the rest follow the same split
            moved.update(move_keys(cam, MOVED, errors, warnings, f"cameras[{i}]."))
    inherited = merge_overrides(doc, "cameras", PER_CAMERA, errors)
    cfg = build(Config, doc, "", errors, _check_section)
    errors = [e for e in errors if not inherited_from_global(e, inherited)]
    if cfg is not None:
        ids = [c.id for c in cfg.cameras if c is not None]
        for dup in sorted({x for x in ids if ids.count(x) > 1}):
            errors.append(f"cameras: duplicate id {dup!r}")
        for key, listed in (("relay.cameras", cfg.relay.cameras),):
            unknown = [x for x in listed if isinstance(x, str) and x not in ids]  # others: reported
            if unknown:
                errors.append(f"{key}: unknown camera id(s) {', '.join(unknown)}")
    if errors or cfg is None:
        raise ConfigError([old_name(e, moved) for e in errors] or ["invalid configuration"])
    for w in warnings:
        logger.warning("%s", w)
    return dataclasses.replace(cfg, path=path, warnings=tuple(warnings))


def check_files(cfg: Config) -> tuple[list[str], list[str]]:
    """Problems with the files the config names, as the agent would meet them at start: errors,
    and warnings (bad rows of the rules file, which the agent leaves out)."""
    from .sources.backend import pyav_available  # the sources are built on this module
    errors: list[str] = []
    warnings: list[str] = []
    if cfg.rules.file:
        try:
            warnings += [m for _, m in read_rules_file(Path(cfg.rules.file)).problems]
        except ConfigError as err:
            errors.extend(err.errors)
    for i, cam in enumerate(cfg.cameras):
        if cam.backend == "pyav" and not pyav_available():
            errors.append(f"cameras[{i}].backend: \"pyav\" needs PyAV (pip install av), which is not installed")
    model = cfg.detector.model_path
    if model and not Path(model).expanduser().is_file():
        errors.append(f"detector.model_path: model file not found: {model}")
    if cfg.mqtt.enabled and cfg.mqtt.tls and cfg.mqtt.ca_file:
        try:
            ssl.create_default_context(cafile=cfg.mqtt.ca_file)
        except (OSError, ssl.SSLError, ValueError) as err:
            errors.append(f"mqtt.ca_file: cannot load {cfg.mqtt.ca_file}: {err}")
    return errors, warnings


def load(path: str | os.PathLike[str]) -> Config:
    """Read and validate a TOML file, and the files it names (the rules CSV, a model, a CA file)."""
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
    cfg = parse(doc, str(p))
    errors, warnings = check_files(cfg)
    if errors:
        raise ConfigError(errors)
    for w in warnings:
        logger.warning("%s", w)
    return dataclasses.replace(cfg, warnings=cfg.warnings + tuple(warnings))


__all__ = [
    "CameraConfig",
    "ClockConfig",
    "Config",
    "ConsoleConfig",
    "CropConfig",
    "DecisionConfig",
    "DetectorConfig",
    "HistoryConfig",
    "MotionConfig",
    "MqttConfig",
    "ReaderConfig",
    "RelayConfig",
    "RuleEntry",
    "RulesConfig",
    "StatusConfig",
    "StorageConfig",
    "UploadConfig",
    "WebhookConfig",
    "Zone",
    "check_files",
    "load",
    "parse",
]
