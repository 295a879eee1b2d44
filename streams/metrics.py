"""Process-wide counters and histograms (prometheus_client), served at ``GET /metrics`` (``streams.web.views``).

The pipeline counts with one line each, about once per batch, not per row
(``metrics.events_ingested.labels(tenant=t).inc(n)``; durations through ``timed``); nothing here does I/O.
Each worker process counts its own work; Prometheus sums over workers. Counters end in ``_total``,
durations are histograms in seconds.

The metrics live in ``REGISTRY``, a ``CollectorRegistry`` of the project's own rather than prometheus_client's
default one: ``/metrics`` then shows exactly the families declared here and the web view's scrape-time
collector, and nothing that a library registers on the default registry when it is imported. The ``_created``
series that prometheus_client adds to every counter and histogram are turned off (a process-wide switch of the
library, and this process has no other user of it): in the plain text format they are one more gauge per
series, which no dashboard of ours reads.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Awaitable
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics

T = TypeVar("T")

disable_created_metrics()
REGISTRY = CollectorRegistry()

SFMC_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Seconds (and ``+Inf``) of an SFMC call, from asking to its answer: a SOAP Retrieve, REST lookup or rowset
answers in 0.1-2 s; a wait for one of the BU's concurrent-call slots, a 429's ``Retry-After`` and the client's
retries (up to 5 attempts of at most 30 s, backoff up to 5 s) reach tens of seconds."""
MONGO_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0)
"""Seconds (and ``+Inf``) of a MongoDB bulk write, retries included: a batch's bulk takes milliseconds to a
second; an outage's backoff (0.5 s doubling to 30 s, ``streams.mongo``) puts its writes in the top buckets."""

events_ingested = Counter("leads_events_ingested_total", "Click events appended to click-events, by tenant.",
                          ["tenant"], registry=REGISTRY)
rows_skipped = Counter("leads_rows_skipped_total", "Click rows acked as skipped (no link or skipped job).",
                       ["tenant"], registry=REGISTRY)
dead_letters = Counter("leads_dead_letters_total", "Records sent to the dead-letter topic, by stage and tenant.",
                       ["stage", "tenant"], registry=REGISTRY)
rows_read = Counter("leads_rows_read_total", "Click-log rows read (SFMC polls, Kinesis, SQS), by tenant and source.",
                    ["tenant", "source"], registry=REGISTRY)
sfmc_calls = Histogram("leads_sfmc_call_seconds", "SFMC client calls (entity fetches, rowsets), by call and tenant.",
                       ["call", "tenant", "outcome"], registry=REGISTRY, buckets=SFMC_BUCKETS)
entities_fetched = Counter("leads_entities_fetched_total", "Entity snapshots SFMC returned, by kind.",
                           ["kind"], registry=REGISTRY)
mongo_writes = Histogram("leads_mongo_write_seconds", "MongoDB bulk writes including retries, by collection.",
                         ["collection", "outcome"], registry=REGISTRY, buckets=MONGO_BUCKETS)
mongo_write_ops = Counter("leads_mongo_write_ops_total", "Update operations sent in bulk writes, by collection.",
                          ["collection"], registry=REGISTRY)
mongo_retries = Counter("leads_mongo_retries_total", "MongoDB operations retried after a transient error.",
                        ["what"], registry=REGISTRY)
acks_emitted = Counter("leads_acks_emitted_total", "Rows put on the acks topic, by status.",
                       ["status"], registry=REGISTRY)
rows_marked = Counter("leads_rows_marked_processed_total", "Rows SFMC accepted as Processed, by tenant.",
                      ["tenant"], registry=REGISTRY)
key_mismatch_fallbacks = Counter(
    "leads_ack_10006_fallbacks_total", "Rows SFMC refused with 10006, recorded in processed-events instead.",
    ["tenant"], registry=REGISTRY,
)
refused_rows_dropped = Counter(
    "leads_refused_rows_dropped_total",
    "Readings of rows SFMC refused with 10006 (processed for good), dropped by ingest without a new ack, by tenant.",
    ["tenant"], registry=REGISTRY,
)


async def timed(histogram: Histogram, awaitable: Awaitable[T], **labels: str) -> T:
    """Await ``awaitable`` and observe how long it took, in seconds, in ``histogram`` under ``labels`` plus
    ``outcome="ok"``, or ``outcome="error"`` when it raises (or is cancelled); returns its result."""
    start = time.perf_counter()
    outcome = "error"
    try:
        result = await awaitable
        outcome = "ok"
        return result
    finally:
        histogram.labels(outcome=outcome, **labels).observe(time.perf_counter() - start)


def total(metric: Counter | Histogram, suffix: str = "_total", **match: str) -> float:
    """The sum of ``metric``'s samples whose name ends with ``suffix`` (``_total`` of a counter, ``_count`` or
    ``_sum`` of a histogram) and whose labels include ``match``."""
    return sum(sample.value for family in metric.collect() for sample in family.samples
               if sample.name.endswith(suffix) and all(sample.labels.get(k) == v for k, v in match.items()))


def count(counter: Counter, **match: str) -> int:
    """``total`` of a counter of whole things (rows, events) as an int: the sum of its ``_total`` samples whose
    labels include ``match``."""
    return int(total(counter, **match))


def totals(counter: Counter, label: str) -> dict[str, float]:
    """The counts of ``counter`` per value of ``label``, summed over its other labels: ``{label value: count}``
    (read from its collected ``_total`` samples; a value never counted is absent)."""
    sums: dict[str, float] = defaultdict(float)
    for family in counter.collect():
        for sample in family.samples:
            if sample.name == f"{family.name}_total":
                sums[sample.labels[label]] += sample.value
    return dict(sums)
