"""The SFMC emulator in its own process, instrumented for the benchmark through its public hooks
(``sfmc_emulator.Hooks``) and an aiohttp middleware (nothing in ``streams`` or ``sfmc_emulator`` changes).

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
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from sfmc_emulator import Emulator, Hooks, Unit, build_parser, config_from, load_dataset
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


class BenchHooks(Hooks):
    """Notes when each click-log row is first returned and first marked processed; feeds the click log."""

    def __init__(self, marks: Marks, feed: Feed) -> None:
        self.marks = marks
        self.feed = feed

    def click_rows(self, unit: Unit) -> list[dict[str, str]]:
        return self.feed.visible(unit)

    def rows_returned(self, unit: Unit, rows: Sequence[dict[str, str]]) -> None:
        now = time.time()
        for row in rows:
            self.marks.read.setdefault(row.get("ID", ""), now)

    def row_marked(self, unit: Unit, row: dict[str, str]) -> None:
        if row.get("Processed", "").lower() in ("true", "1"):
            self.marks.marked.setdefault(row.get("ID", ""), time.time())


MARKS = Marks()
FEED = Feed()


@web.middleware
async def _first_poll(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The start of the first SOAP call that returned click-log rows is the first poll."""
    started = time.time()
    reply = await handler(request)
    if request.method == "POST" and request.path.endswith("/Service.asmx") and MARKS.first_poll is None \
            and MARKS.read:
        MARKS.first_poll = started
    return reply


async def _marks(request: web.Request) -> web.Response:
    return web.json_response(MARKS.summary())


async def _serve(argv: list[str] | None) -> None:
    parser = build_parser()
    parser.add_argument("--feed-rate", type=float, default=None, help="click-log rows fed per second")
    args = parser.parse_args(argv)
    FEED.rate = args.feed_rate
    emulator = Emulator(load_dataset(args.dataset), config_from(args), BenchHooks(MARKS, FEED))
    emulator.app.middlewares.append(_first_poll)
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
