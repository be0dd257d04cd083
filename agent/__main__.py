"""Command line: ``plate-agent run | check-config | demo | probe | eval-detector | relay-test |
install | uninstall | doctor``.

Exit codes: 0 ok, 1 could not start or run, 2 invalid configuration or usage.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import config, redact
from .errors import ConfigError
from .tools import install

logger = logging.getLogger("agent")

EXIT_OK, EXIT_FAIL, EXIT_CONFIG = 0, 1, 2
DEFAULT_CONFIG = install.CONFIG  # where `plate-agent install` writes it


def setup_logging(level: str) -> None:
    # journald adds its own timestamps; a terminal gets them from us
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not os.environ.get("JOURNAL_STREAM"):
        fmt = "%(asctime)s " + fmt
    logging.basicConfig(level=level.upper(), format=fmt, stream=sys.stderr, force=True)
    redact.guard_logs()


def load_config(path: str) -> config.Config | None:
    try:
        return config.load(path)
    except ConfigError as err:
        print(f"{path}: invalid configuration:", file=sys.stderr)
        for line in err.errors:
            print(f"  {line}", file=sys.stderr)
        return None


def run_config_errors(path: str | os.PathLike[str]) -> tuple[config.Config | None, list[str]]:
    """The config ``run`` starts from, or every reason it would refuse it (``check-config``,
    ``install`` and ``doctor`` ask this too, so they refuse the same files)."""
    try:
        cfg = config.load(path)
    except ConfigError as err:
        return None, list(err.errors)
    if not cfg.cameras:
        return None, ["cameras: at least one [[cameras]] table is needed to run"]
    return cfg, []


def load_run_config(path: str) -> config.Config | None:
    cfg, errors = run_config_errors(path)
    if cfg is None:
        print(f"{path}: invalid configuration:", file=sys.stderr)
        for line in errors:
            print(f"  {line}", file=sys.stderr)
    return cfg


def cmd_check_config(args: argparse.Namespace) -> int:
    setup_logging(args.log_level or "warning")  # deprecated keys are logged as warnings
    cfg = load_run_config(args.config)
    if cfg is None:
        return EXIT_CONFIG
    print(f"{args.config}: ok ({len(cfg.cameras)} camera(s), reader {cfg.reader.type}, relay {cfg.relay.type})")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from .failsafe import drive_off, remember

    setup_logging(args.log_level or "info")  # until the config says otherwise
    drive_off(args.config)  # first: a start that fails below must not leave a latched relay on
    cfg = load_run_config(args.config)
    if cfg is None:
        return EXIT_CONFIG
    remember(cfg)
    setup_logging(args.log_level or cfg.log_level)
    sinks = []
    if args.print_events:
        from .events import JsonLinesSink

        sinks.append(JsonLinesSink())
    from .service import run_service

    return run_service(cfg, extra_sinks=sinks)


def cmd_demo(args: argparse.Namespace) -> int:
    from .tools.demo import run_demo

    setup_logging(args.log_level or "warning")
    return run_demo(Path(args.out))


def cmd_probe(args: argparse.Namespace) -> int:
    from .tools.probe import run_probe

    cfg = load_config(args.config) if args.config else config.parse({})
    if cfg is None:
        return EXIT_CONFIG
    setup_logging(args.log_level or "warning")
    return run_probe(args.images, cfg, annotate=args.annotate, read=not args.no_read)


def cmd_eval_detector(args: argparse.Namespace) -> int:
    from .tools.evaluate import run_eval

    cfg = load_config(args.config) if args.config else config.parse({})
    if cfg is None:
        return EXIT_CONFIG
    setup_logging(args.log_level or "warning")
    return run_eval(args, cfg)


def cmd_relay_test(args: argparse.Namespace) -> int:
    from .sinks.relay import relay_test

    cfg = load_config(args.config)
    if cfg is None:
        return EXIT_CONFIG
    setup_logging(args.log_level or "info")
    return relay_test(cfg.relay)


def cmd_install(args: argparse.Namespace) -> int:
    from .tools.install import run_install

    setup_logging(args.log_level or "warning")
    return run_install(args.root, ask_token=not args.no_token, check=lambda p: run_config_errors(p)[1])


def cmd_uninstall(args: argparse.Namespace) -> int:
    from .tools.install import run_uninstall

    setup_logging(args.log_level or "warning")
    return run_uninstall(args.root, purge=args.purge)


def cmd_doctor(args: argparse.Namespace) -> int:
    from .tools.doctor import Options, run_doctor

    setup_logging(args.log_level or "error")
    return run_doctor(args.config, Options(paid_read=args.read, pulse=args.pulse), as_json=args.json)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="plate-agent", description="Edge camera agent for licence-plate gates.")
    ap.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run the agent (the systemd service's command)")
    p.add_argument("-c", "--config", default=DEFAULT_CONFIG)
    p.add_argument("--print-events", action="store_true", help="also print each event as a JSON line")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("check-config", help="validate a config file: exit 0, or 2 listing every error")
    p.add_argument("-c", "--config", default=DEFAULT_CONFIG)
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("demo", help="run the real pipeline on a generated clip; prints events as JSON lines")
    p.add_argument("--out", default="demo-out", help="folder for the clip and the crops (default: demo-out)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("probe", help="run the detector (and the reader, when configured) on images")
    p.add_argument("images", nargs="+")
    p.add_argument("-c", "--config")
    p.add_argument("--annotate", metavar="DIR", help="write the images with boxes drawn into DIR")
    p.add_argument("--no-read", action="store_true", help="detector only, even when a reader is configured")
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser("eval-detector", help="recall, false boxes and speed of the detector on annotated images")
    p.add_argument("--data", required=True, help="folder with annotations.csv")
    p.add_argument("-c", "--config")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.set_defaults(func=cmd_eval_detector)

    p = sub.add_parser("relay-test", help="pulse the configured gate relay once")
    p.add_argument("-c", "--config", default=DEFAULT_CONFIG)
    p.set_defaults(func=cmd_relay_test)

    p = sub.add_parser("install", help="set up the system user, config, token credential and service; start it")
    p.add_argument("--root", default="", metavar="DIR",
                   help="install into DIR standing in for / and print the commands instead of running them")
    p.add_argument("--no-token", action="store_true", help="do not ask for the Plate Recognizer token")
    p.set_defaults(func=cmd_install)

    p = sub.add_parser("uninstall", help="stop and remove the service (config and history stay unless --purge)")
    p.add_argument("--root", default="", metavar="DIR", help="as for install")
    p.add_argument("--purge", action="store_true", help="also remove the config, the token, the history and the user")
    p.set_defaults(func=cmd_uninstall)

    p = sub.add_parser("doctor", help="check every part the config uses, one pass/fail line each with a fix")
    p.add_argument("-c", "--config", default=DEFAULT_CONFIG)
    p.add_argument("--json", action="store_true", help="the results as JSON")
    p.add_argument("--read", action="store_true", help="also send the test image to the reader (a paid lookup)")
    p.add_argument("--pulse", action="store_true", help="also pulse the relay once (moves the barrier)")
    p.set_defaults(func=cmd_doctor)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
