"""``streams.metrics`` (prometheus_client): what ``GET /metrics`` serves, the ``timed`` helper, per-label totals."""

from __future__ import annotations

import asyncio
import math

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, enable_created_metrics
from prometheus_client.parser import text_string_to_metric_families

from streams import metrics
from streams.app import build
from streams.settings import load_settings
from streams.web.views import METRICS_CONTENT_TYPE, WorkerCollector, metrics_text

FAMILIES = {  # as the parser names them: a counter's family without its ``_total``
    "leads_events_ingested": "counter",
    "leads_rows_skipped": "counter",
    "leads_dead_letters": "counter",
    "leads_sfmc_call_seconds": "histogram",
    "leads_entities_fetched": "counter",
    "leads_mongo_write_seconds": "histogram",
    "leads_mongo_write_ops": "counter",
    "leads_mongo_retries": "counter",
    "leads_acks_emitted": "counter",
    "leads_rows_marked_processed": "counter",
    "leads_ack_10006_fallbacks": "counter",
    "leads_refused_rows_dropped": "counter",
    "leads_sfmc_requests": "counter",
    "leads_sfmc_retries": "counter",
    "leads_sfmc_throttled": "counter",
    "leads_sfmc_token_refreshes": "counter",
    "leads_sfmc_token_failures": "counter",
    "leads_rows_read": "counter",
    "leads_last_poll_finished_timestamp_seconds": "gauge",
    "leads_worker_is_leader": "gauge",
}


async def test_metrics_view_serves_prometheus_text_with_every_family() -> None:
    tenant = "metrics-view"
    worker = build(load_settings())
    worker.poller.status[tenant] = {"rows_total": 5, "last_poll_finished": 1_780_000_000.25}
    metrics.rows_read.labels(tenant=tenant, source="sfmc").inc(5)
    scraped = CollectorRegistry()
    scraped.register(WorkerCollector(worker))
    metrics.events_ingested.labels(tenant=tenant).inc(3)
    metrics.events_ingested.labels(tenant=tenant).inc(4)
    await metrics.timed(metrics.sfmc_calls, asyncio.sleep(0), call="send", tenant=tenant)
    assert METRICS_CONTENT_TYPE == "text/plain; version=0.0.4; charset=utf-8"
    text = metrics_text(scraped).decode()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    assert {name: family.type for name, family in families.items()} == FAMILIES
    samples = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
               for family in families.values() for sample in family.samples}
    assert samples[("leads_events_ingested_total", (("tenant", tenant),))] == 7
    labels = (("call", "send"), ("outcome", "ok"), ("tenant", tenant))
    assert samples[("leads_sfmc_call_seconds_count", labels)] == 1
    bounds = sorted(float(sample.labels["le"]) for sample in families["leads_sfmc_call_seconds"].samples
                    if sample.name.endswith("_bucket") and sample.labels["tenant"] == tenant)
    assert bounds == [*metrics.SFMC_BUCKETS, math.inf]
    assert samples[("leads_rows_read_total", (("source", "sfmc"), ("tenant", tenant)))] == 5
    assert samples[("leads_last_poll_finished_timestamp_seconds", (("tenant", tenant),))] == 1_780_000_000.25
    assert samples[("leads_worker_is_leader", ())] == 0  # not started: no assignment, so no leader
    assert not [line for line in text.splitlines() if "_created" in line]


async def test_timed_observes_seconds_with_the_outcome_and_passes_results_and_errors_through() -> None:
    registry = CollectorRegistry()
    histogram = Histogram("test_wait_seconds", "Waits.", ["call", "outcome"], registry=registry,
                          buckets=(0.01, 1.0))

    async def answer() -> int:
        await asyncio.sleep(0.02)
        return 42

    async def fail() -> None:
        raise ValueError("no")

    assert await metrics.timed(histogram, answer(), call="x") == 42
    with pytest.raises(ValueError, match="no"):
        await metrics.timed(histogram, fail(), call="x")
    ok, error = {"call": "x", "outcome": "ok"}, {"call": "x", "outcome": "error"}
    assert registry.get_sample_value("test_wait_seconds_count", ok) == 1
    assert registry.get_sample_value("test_wait_seconds_count", error) == 1
    assert (registry.get_sample_value("test_wait_seconds_sum", ok) or 0) >= 0.02
    assert registry.get_sample_value("test_wait_seconds_bucket", {**ok, "le": "0.01"}) == 0
    assert registry.get_sample_value("test_wait_seconds_bucket", {**error, "le": "0.01"}) == 1


@pytest.mark.parametrize("created", [False, True], ids=["without _created", "with _created"])
def test_totals_sum_a_counter_over_its_other_labels(created: bool) -> None:
    counter = Counter("test_things_total", "Things.", ["tenant", "stage"], registry=CollectorRegistry())
    assert metrics.totals(counter, "tenant") == {}
    counter.labels(tenant="a", stage="x").inc(2)
    counter.labels(tenant="a", stage="y").inc(3)
    counter.labels(tenant="b", stage="x").inc()
    counter.labels(tenant="c", stage="x").inc(0)
    if created:  # the library's process-wide switch, on: its ``_created`` samples are not counts
        enable_created_metrics()
    try:
        assert metrics.totals(counter, "tenant") == {"a": 5, "b": 1, "c": 0}
        assert metrics.totals(counter, "stage") == {"x": 3, "y": 3}
    finally:
        disable_created_metrics()
