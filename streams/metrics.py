"""Process-wide counters and timings, served in Prometheus text format at ``GET /metrics`` (streams.web).

The pipeline calls these with one line each (``metrics.events_ingested.inc(n, tenant=t)``); nothing here
does I/O. Each worker process counts its own work; Prometheus sums over workers.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Iterator
from typing import TypeVar

T = TypeVar("T")
Labels = tuple[tuple[str, str], ...]


class Metric:
    """A named family of samples keyed by label values."""

    kind = "untyped"

    def __init__(self, name: str, help: str) -> None:
        self.name = name
        self.help = help
        REGISTRY.append(self)

    @staticmethod
    def _labels(labels: dict[str, object]) -> Labels:
        return tuple(sorted((key, str(value)) for key, value in labels.items()))

    def samples(self) -> Iterator[tuple[str, Labels, float]]:
        """``(sample name, labels, value)`` triples, for the exposition writer."""
        raise NotImplementedError


class Counter(Metric):
    """A monotonically increasing count."""

    kind = "counter"

    def __init__(self, name: str, help: str) -> None:
        super().__init__(name, help)
        self.values: dict[Labels, float] = {}

    def inc(self, amount: float = 1, **labels: object) -> None:
        key = self._labels(labels)
        self.values[key] = self.values.get(key, 0) + amount

    def value(self, **labels: object) -> float:
        return self.values.get(self._labels(labels), 0)

    def by(self, label: str) -> dict[str, float]:
        """The count per value of ``label`` (summed over the other labels), e.g. ``{tenant: count}``."""
        totals: dict[str, float] = {}
        for labels, value in self.values.items():
            key = dict(labels).get(label, "")
            totals[key] = totals.get(key, 0) + value
        return totals

    def samples(self) -> Iterator[tuple[str, Labels, float]]:
        for labels, value in sorted(self.values.items()):
            yield self.name, labels, value


class Timer(Metric):
    """Durations in seconds, exposed as a Prometheus summary (``_count`` and ``_sum``, no quantiles)."""

    kind = "summary"

    def __init__(self, name: str, help: str) -> None:
        super().__init__(name, help)
        self.counts: dict[Labels, int] = {}
        self.sums: dict[Labels, float] = {}

    def observe(self, seconds: float, **labels: object) -> None:
        key = self._labels(labels)
        self.counts[key] = self.counts.get(key, 0) + 1
        self.sums[key] = self.sums.get(key, 0.0) + seconds

    async def time(self, awaitable: Awaitable[T], **labels: object) -> T:
        """Await ``awaitable`` and record how long it took (also when it raises, with ``outcome=error``)."""
        start = time.perf_counter()
        outcome = "error"
        try:
            result = await awaitable
            outcome = "ok"
            return result
        finally:
            self.observe(time.perf_counter() - start, outcome=outcome, **labels)

    def samples(self) -> Iterator[tuple[str, Labels, float]]:
        for labels in sorted(self.counts):
            yield f"{self.name}_count", labels, self.counts[labels]
            yield f"{self.name}_sum", labels, self.sums[labels]


REGISTRY: list[Metric] = []

events_ingested = Counter("leads_events_ingested_total", "Click events appended to click-events, by tenant.")
rows_skipped = Counter("leads_rows_skipped_total", "Click rows acked as skipped (no link or skipped job).")
dead_letters = Counter("leads_dead_letters_total", "Records sent to the dead-letter topic, by stage.")
sfmc_calls = Timer("leads_sfmc_call_seconds", "SFMC client calls (entity fetches, rowsets), by call and tenant.")
entities_fetched = Counter("leads_entities_fetched_total", "Entity snapshots SFMC returned, by kind.")
mongo_writes = Timer("leads_mongo_write_seconds", "MongoDB bulk writes including retries, by collection.")
mongo_write_ops = Counter("leads_mongo_write_ops_total", "Update operations sent in bulk writes, by collection.")
mongo_retries = Counter("leads_mongo_retries_total", "MongoDB operations retried after a transient error.")
acks_emitted = Counter("leads_acks_emitted_total", "Rows put on the acks topic, by status.")
rows_marked = Counter("leads_rows_marked_processed_total", "Rows SFMC accepted as Processed, by tenant.")
key_mismatch_fallbacks = Counter(
    "leads_ack_10006_fallbacks_total", "Rows SFMC refused with 10006, recorded in processed-events instead."
)
refused_rows_dropped = Counter(
    "leads_refused_rows_dropped_total",
    "Readings of rows SFMC refused with 10006 (processed for good), dropped by ingest without a new ack, by tenant.",
)
