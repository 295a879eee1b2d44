"""The command line: ``sfmc-emulator --port 18765 --dataset FILE`` (or ``--generate rows=N,seed=S``); also
``python -m sfmc_emulator``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from typing import Any

from .generator import Sizes, generate
from .server import start_emulator
from .state import Config, load_dataset


def _generate(spec: str) -> dict[str, Any]:
    options = {}
    for part in filter(None, spec.split(",")):
        name, _, value = part.partition("=")
        options[name.strip()] = int(value)
    seed = options.pop("seed", 1)
    return generate(Sizes(**options), seed)


def build_parser() -> argparse.ArgumentParser:
    """The emulator's command-line options (a caller may add its own before parsing)."""
    parser = argparse.ArgumentParser(description="SFMC emulator (token, SOAP Retrieve, assets, rowsets).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18765)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--dataset", help="dataset JSON file (see README.md)")
    source.add_argument("--generate", default="", help="generate one: rows=N,seed=S,units=U,sends=…")
    parser.add_argument("--soap-latency", type=float, default=0.0, help="ms per SOAP call")
    parser.add_argument("--rest-latency", type=float, default=0.0, help="ms per REST call")
    parser.add_argument("--token-latency", type=float, default=0.0, help="ms per token call")
    parser.add_argument("--token-lifetime", type=float, default=1080.0, help="seconds")
    parser.add_argument("--rate-429", type=float, default=0.0, help="share of REST calls answered 429")
    parser.add_argument("--rate-500", type=float, default=0.0, help="share of SOAP/REST calls answered 500")
    parser.add_argument("--retry-after", type=float, default=1.0, help="Retry-After seconds on 429")
    parser.add_argument("--reject-rows", default="", help="comma-separated row IDs answering 10006")
    parser.add_argument("--page-size", type=int, default=2500)
    parser.add_argument("--seed", type=int, default=None, help="seed for injected failures")
    return parser


def config_from(args: argparse.Namespace) -> Config:
    """The knobs the parsed options of :func:`build_parser` set."""
    config = Config()
    config.update(
        {
            "latency_ms": {"soap": args.soap_latency, "rest": args.rest_latency, "token": args.token_latency},
            "token_lifetime": args.token_lifetime,
            "rate_429": args.rate_429,
            "rate_500": args.rate_500,
            "retry_after": args.retry_after,
            "reject_row_ids": [r for r in args.reject_rows.split(",") if r],
            "page_size": args.page_size,
            "seed": args.seed,
        }
    )
    return config


async def _serve(args: argparse.Namespace) -> None:
    dataset = load_dataset(args.dataset) if args.dataset else _generate(args.generate)
    emulator = await start_emulator(dataset, host=args.host, port=args.port, config=config_from(args))
    units = [{"tenant": u.tenant, "client_id": u.client_id, "mid": u.mid} for u in emulator.units]
    print(f"SFMC emulator listening on {emulator.url}", flush=True)
    print(json.dumps({"url": emulator.url, "units": units}), flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await emulator.stop()


def main(argv: list[str] | None = None) -> None:
    """Serve until interrupted (the ``sfmc-emulator`` console script)."""
    args = build_parser().parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))

