"""``python -m stack up|down|status|prepare|env|start-service|stop-service|restart-service``."""

from __future__ import annotations

import argparse
import sys
import time

from . import config, control
from .services import SERVICES, StackError


def _print_status(names: list[str]) -> int:
    rows = control.status(names)
    print(f"{'service':<10} {'port':>6} {'pid':>8}  state")
    for row in rows:
        note = f"  ({row.note})" if row.note else ""
        print(f"{row.name:<10} {row.port:>6} {row.pid or '-':>8}  {row.state}{note}")
    return 0 if all(row.up or row.state == "absent" for row in rows) else 3


def _prepare(names: list[str]) -> None:
    cfg = config.load()
    for name in names or list(SERVICES):
        svc = SERVICES[name]
        if svc.available(cfg) is None:
            began = time.monotonic()
            svc.prepare(cfg, print)
            print(f"{name}: prepared in {time.monotonic() - began:.1f}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    services_help = f"services (default all): {', '.join(SERVICES)}"
    for name, help_text in [
        ("up", "start services and wait until they answer"),
        ("down", "stop services (SIGTERM, then SIGKILL)"),
        ("status", "print each service's port, pid and state (exit 3 if any is down)"),
        ("prepare", "fetch the Kafka jars, format storage, build binaries; start nothing"),
    ]:
        commands.add_parser(name, help=help_text).add_argument("services", nargs="*", help=services_help)
    for name in ("start-service", "stop-service", "restart-service"):
        commands.add_parser(name, help=f"{name.split('-')[0]} one service").add_argument(
            "service", choices=list(SERVICES)
        )
    commands.add_parser("env", help="print LEADS_* variables pointing a worker at this stack")
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            began = time.monotonic()
            control.up(args.services)
            print(f"stack up ({time.monotonic() - began:.1f}s)")
        elif args.command == "down":
            control.down(args.services)
        elif args.command == "status":
            return _print_status(args.services)
        elif args.command == "prepare":
            _prepare(args.services)
        elif args.command == "env":
            cfg = config.load()
            print(f"LEADS_BROKER={cfg.kafka_url}")
            print(f"LEADS_MONGO_URL={cfg.mongo_url}")
            print(f"LEADS_AWS_ENDPOINT_URL={cfg.moto_url}")
        else:
            action = {
                "start-service": control.start_service,
                "stop-service": control.stop_service,
                "restart-service": control.restart_service,
            }[args.command]
            action(args.service)
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
