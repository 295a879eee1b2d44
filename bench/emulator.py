"""The SFMC emulator in its own process, instrumented for the benchmark (nothing in ``streams`` changes).

    python -m bench.emulator --dataset FILE --port 0 --soap-latency 150 --rest-latency 80

Prints one JSON line ``{"url": ...}`` once listening. Besides the emulator's own endpoints it serves
``GET /_bench/marks``: when each row was first returned by a click-log Retrieve and when it was first
marked ``Processed``, summarised (first poll, last ack, read-to-ack latency percentiles).

``--feed-rate R`` (rows per second, per BU) feeds the click log instead of serving it whole: from the first
click-log Retrieve on, each BU's rows appear in ``EventDate`` order, ``R`` a second (``bench.run --half-rate``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from aiohttp import web

from streams.marketing_cloud.emulator.__main__ import _parser, config_from
from streams.marketing_cloud.emulator.server import Emulator, _json
from streams.marketing_cloud.emulator.state import Unit, load_dataset
from streams.marketing_cloud.values import parse_de_date


class Marks:
    """Per row ID: first read (returned by a click-log page) and first mark as processed (wall clock)."""

    def __init__(self) -> None:
        self.first_poll: float | None = None
        self.read: dict[str, float] = {}
        self.marked: dict[str, float] = {}

    def summary(self) -> dict[str, Any]:
        latencies = sorted(self.marked[i] - self.read[i] for i in self.marked if i in self.read)

        def pct(q: float) -> float | None:
            return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else None

        return {
            "first_poll": self.first_poll,
            "first_read": min(self.read.values(), default=None),
            "last_read": max(self.read.values(), default=None),
            "first_mark": min(self.marked.values(), default=None),
            "last_mark": max(self.marked.values(), default=None),
            "rows_read": len(self.read),
            "rows_marked": len(self.marked),
            "latency": {"p50": pct(0.50), "p90": pct(0.90), "p99": pct(0.99),
                        "max": latencies[-1] if latencies else None},
        }


def _clicked_at(row: dict[str, str]) -> float:
    """A row's EventDate for ordering (epoch seconds of its local time; 0 for a row without a valid one)."""
    try:
        return parse_de_date(row["EventDate"]).timestamp()
    except ValueError:
        return 0.0


class Feed:
    """The click-log rows a Retrieve may see: all, or (``rate`` rows per second) those fed so far."""

    def __init__(self) -> None:
        self.rate: float | None = None
        self.started: float | None = None
        self.rows: dict[str, list[dict[str, str]]] = {}
        """Each BU's rows (by client id) in EventDate order, all of them."""

    def visible(self, unit: Unit) -> list[dict[str, str]]:
        if self.rate is None:
            return unit.rows
        if unit.client_id not in self.rows:
            self.rows[unit.client_id] = sorted(unit.rows, key=_clicked_at)
        self.started = self.started or time.time()
        return self.rows[unit.client_id][: int((time.time() - self.started) * self.rate)]


MARKS = Marks()
FEED = Feed()
_page = Emulator._page
_retrieve = Emulator._retrieve
_soap = Emulator._soap
_mark = Unit.mark


def _bench_page(self: Emulator, request_id: str, pending: Any) -> bytes:
    if pending.object_type.startswith("DataExtensionObject"):
        now = time.time()
        for record in pending.records[: pending.page_size]:
            MARKS.read.setdefault(record.get("ID", ""), now)
    return _page(self, request_id, pending)


def _bench_retrieve(self: Emulator, unit: Unit, call: Any) -> bytes:
    if not (call.object_type or "").startswith("DataExtensionObject"):
        return _retrieve(self, unit, call)
    everything, unit.rows = unit.rows, FEED.visible(unit)  # marks reach the same row dicts either way
    try:
        return _retrieve(self, unit, call)
    finally:
        unit.rows = everything


async def _bench_soap(self: Emulator, request: web.Request) -> web.Response:
    started = time.time()
    reply = await _soap(self, request)
    if MARKS.first_poll is None and MARKS.read:
        MARKS.first_poll = started  # the first SOAP call that returned rows is the first poll
    return reply


def _bench_mark(self: Unit, keys: dict[str, str], values: dict[str, Any]) -> dict[str, str]:
    row = _mark(self, keys, values)
    if row.get("Processed", "").lower() in ("true", "1"):
        MARKS.marked.setdefault(row.get("ID", ""), time.time())
    return row


Emulator._page = _bench_page  # type: ignore[method-assign]
Emulator._retrieve = _bench_retrieve  # type: ignore[method-assign]
Emulator._soap = _bench_soap  # type: ignore[method-assign]
Unit.mark = _bench_mark  # type: ignore[method-assign]


async def _marks(request: web.Request) -> web.Response:
    return _json(MARKS.summary())


async def _serve(argv: list[str] | None) -> None:
    parser = _parser()
    parser.add_argument("--feed-rate", type=float, default=None, help="click-log rows fed per second")
    args = parser.parse_args(argv)
    FEED.rate = args.feed_rate
    emulator = Emulator(load_dataset(args.dataset), config_from(args))
    emulator.app.router.add_get("/_bench/marks", _marks)
    url = await emulator.start(args.host, args.port)
    print(json.dumps({"url": url}), flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await emulator.stop()


def main(argv: list[str] | None = None) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(argv))


if __name__ == "__main__":
    main()
