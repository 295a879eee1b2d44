"""Rates an operator can see: this process's counters (``streams.metrics``) sampled every ``INTERVAL`` seconds
over the last ``WINDOW`` seconds, as per-second rates for the status page's charts and ``leads-sync status``.

Each worker samples its own counters (as each counts its own work): the page shows the rates of the worker that
answers it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from itertools import pairwise

from streams import metrics

INTERVAL = 10.0
"""Seconds between samples."""
WINDOW = 900.0
"""Seconds of history kept: the last 15 minutes."""


SERIES: dict[str, Callable[[], float]] = {
    "rows read": lambda: metrics.total(metrics.rows_read),
    "events": lambda: metrics.total(metrics.events_ingested),
    "documents written": lambda: metrics.total(metrics.mongo_write_ops),
    "rows marked": lambda: metrics.total(metrics.rows_marked),
    "SFMC calls": lambda: metrics.total(metrics.sfmc_calls, "_count"),
    "errors": lambda: (metrics.total(metrics.dead_letters)
                       + metrics.total(metrics.sfmc_calls, "_count", outcome="error")
                       + metrics.total(metrics.mongo_writes, "_count", outcome="error")),
    "Mongo write seconds": lambda: metrics.total(metrics.mongo_writes, "_sum"),
}
"""What the charts draw, each a running total read from the process's metrics: rows read (SFMC polls, Kinesis,
SQS), click events, MongoDB update operations, rows marked processed, SFMC calls, errors (dead letters and
failed SFMC calls and MongoDB writes) and seconds spent in MongoDB bulk writes (per second: the share of time)."""


class RateHistory:
    """Samples of ``series`` (name → running total) at the times ``sample`` is called, the last ``WINDOW``
    seconds of them."""

    def __init__(self, series: Mapping[str, Callable[[], float]] = SERIES) -> None:
        self.series = dict(series)
        self.samples: deque[tuple[float, dict[str, float]]] = deque(maxlen=int(WINDOW / INTERVAL) + 1)

    def sample(self, now: float) -> None:
        """Note every series' total at ``now`` (epoch seconds)."""
        self.samples.append((now, {name: read() for name, read in self.series.items()}))

    def rates(self) -> dict[str, object]:
        """``{"interval": seconds, "window": seconds, "series": {name: [[epoch seconds, per second], ...]}}``: the
        rate over each interval between two samples, at its end; a total that fell (a restart) counts from 0."""
        points: dict[str, list[list[float]]] = {name: [] for name in self.series}
        for (before, old), (at, new) in pairwise(self.samples):
            seconds = at - before
            if seconds <= 0:
                continue
            for name in self.series:
                change = new[name] - old[name] if new[name] >= old[name] else new[name]
                points[name].append([at, change / seconds])
        return {"interval": INTERVAL, "window": WINDOW, "series": points}
