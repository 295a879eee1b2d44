"""The web views of a worker (``register_views``): JSON over faust's web server (``@app.page``), entity lookups
routed with ``@app.table_route`` to the worker that holds the entity."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Iterator
from typing import Any

import faust
from aiokafka.partitioner import murmur2
from faust.types import TableT
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from pydantic import SecretStr

from streams import metrics
from streams.topology import Worker
from streams.web.dead_letters import DeadLetterTail
from streams.web.page import PAGE
from streams.web.rates import INTERVAL, RateHistory
from streams.web.status import OffsetReader, client_options, topic_report, worker_identity

log = logging.getLogger(__name__)

MAX_LIMIT = 1000
"""Keys a ``/tables/{kind}`` page lists at most."""


def authorized(token: SecretStr | None, header: str | None) -> bool:
    """True when no ``token`` is configured, or the ``Authorization`` header is ``Bearer <token>``."""
    if token is None:
        return True
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                              token.get_secret_value().encode())


def _int_arg(request: Request, name: str, default: int, high: int) -> int:
    try:
        return min(max(int(request.query.get(name, default)), 0), high)
    except ValueError:
        return default


async def local_keys(app: faust.App, table: TableT) -> tuple[list[int], list[str]]:
    """This worker's active partitions of ``table`` and the keys it holds in them, sorted.

    Standby replicas of other workers' partitions also sit in the local store; they are left out.
    Hashing every key costs ~30 µs, so the loop yields now and then on large tables."""
    changelog = table.changelog_topic
    name = changelog.get_topic_name()
    mine = {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == name}
    partitions = table.partitions or app.conf.topic_partitions
    keys = []
    for index, key in enumerate(list(table.keys())):
        # the partition faust's router computes: Kafka's default partitioner over the serialized key
        if (murmur2(changelog.prepare_key(key, None)[0]) & 0x7FFFFFFF) % partitions in mine:
            keys.append(str(key))
        if index % 2000 == 1999:
            await asyncio.sleep(0)
    return sorted(mine), sorted(keys)


def business_units(worker: Worker) -> dict[str, Any]:
    """Per tenant, this process's view: rows read, click events, rows skipped, bad rows (dead-lettered by ingest),
    rows refused by SFMC (10006) and rows marked, since it started; its last poll (start and end in epoch seconds,
    duration in seconds, rows, error; polls are the leader's); and its SFMC token: refreshes, refusals and
    ``state`` (``ok``, ``refused: why``, or ``not asked yet``), never the token itself."""
    report = {}
    for unit in worker.settings.business_units:
        tenant = unit.tenant
        status = dict(worker.poller.status.get(tenant) or {})
        client = worker.connections.marketing_cloud(tenant)
        refreshes, failures = client.stats.get("token_refreshes", 0), client.stats.get("token_failures", 0)
        state = f"refused: {client.token_error}" if client.token_error else "ok" if refreshes else "not asked yet"
        report[tenant] = {
            "rows_read": metrics.count(metrics.rows_read, tenant=tenant),
            "events": metrics.count(metrics.events_ingested, tenant=tenant),
            "skipped": metrics.count(metrics.rows_skipped, tenant=tenant),
            "bad": metrics.count(metrics.dead_letters, stage="ingest", tenant=tenant),
            "refused": metrics.count(metrics.key_mismatch_fallbacks, tenant=tenant),
            "marked": metrics.count(metrics.rows_marked, tenant=tenant),
            "polled_by_this_worker": bool(status),
            "last_poll_started": status.get("last_poll_started"),
            "last_poll_finished": status.get("last_poll_finished"),
            "last_poll_seconds": status.get("last_poll_seconds"),
            "rows_last_poll": status.get("rows_last_poll"),
            "rows_total": status.get("rows_total", 0),
            "last_error": status.get("last_error"),
            "token": {"refreshes": refreshes, "refusals": failures, "state": state},
        }
    return report


def _time_arg(request: Request, name: str) -> float | None:
    try:
        value = request.query.get(name)
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


SFMC_CLIENT_STATS = {
    "requests": "HTTP requests sent to SFMC (every attempt, token requests included).",
    "retries": "SFMC requests retried after a throttle, timeout or server error.",
    "throttled": "SFMC answers with HTTP 429.",
    "token_refreshes": "OAuth tokens fetched.",
    "token_failures": "OAuth token requests SFMC refused.",
}
"""The SFMC client's ``stats`` that ``/metrics`` serves as ``leads_sfmc_{stat}_total``, with their help text."""


class WorkerCollector:
    """The samples of ``worker`` that are read when ``/metrics`` is scraped, not counted in ``streams.metrics``:
    the SFMC client's stats per business unit, and this worker's last polls and leadership."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def collect(self) -> Iterator[Metric]:
        """``leads_sfmc_{stat}_total`` per tenant, ``leads_last_poll_finished_timestamp_seconds`` (epoch seconds)
        per tenant this worker polled, and ``leads_worker_is_leader`` (1 or 0)."""
        worker = self.worker
        for stat, help_text in SFMC_CLIENT_STATS.items():
            family = CounterMetricFamily(f"leads_sfmc_{stat}_total", help_text, labels=["tenant"])
            for unit in worker.settings.business_units:
                family.add_metric([unit.tenant], worker.connections.marketing_cloud(unit.tenant).stats.get(stat, 0))
            yield family
        last = GaugeMetricFamily("leads_last_poll_finished_timestamp_seconds",
                                 "When this worker last finished polling a business unit (leader only).",
                                 labels=["tenant"])
        for tenant, status in sorted(worker.poller.status.items()):
            if status.get("last_poll_finished"):
                last.add_metric([tenant], status["last_poll_finished"])
        yield last
        yield GaugeMetricFamily("leads_worker_is_leader", "1 on the leader worker (the one polling).",
                                value=1 if worker_identity(worker.app)["leader"] else 0)


def metrics_text(scraped: CollectorRegistry) -> bytes:
    """The process's metrics (``streams.metrics.REGISTRY``) and ``scraped``'s, in the Prometheus text format that
    ``METRICS_CONTENT_TYPE`` names."""
    return generate_latest(metrics.REGISTRY) + generate_latest(scraped)


METRICS_CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""The plain text format 0.0.4, which ``generate_latest`` writes (``CONTENT_TYPE_LATEST`` names version 1.0.0
since prometheus_client 0.23)."""


def register_views(worker: Worker) -> None:
    """Add the views to ``worker.app``: ``/`` (the status page), ``/status``, ``/dead-letters``, ``/rates``,
    ``/health``, ``/metrics``, ``/entities/{kind}/{entity}`` and ``/tables/{kind}``; all but ``/`` and ``/health``
    want the bearer token when ``LEADS_WEB_TOKEN`` is set. A timer samples the rates every ``INTERVAL``
    seconds."""
    app, token = worker.app, worker.settings.web_token
    tables = {kind: worker.tables.entities[kind] for kind in ("send", "subscriber", "email", "category")}
    topics = worker.topics.by_name()
    offsets = OffsetReader(app)
    dead_letter = worker.topics.dead_letter
    letters = DeadLetterTail(dead_letter.get_topic_name(), dead_letter.partitions or worker.topics.partitions,
                             client_options(app, "web-dead-letters"))
    history = RateHistory()
    history.sample(time.time())  # the start: work done before the timer's first sample shows as a rate too
    scraped = CollectorRegistry()  # this worker's scrape-time samples, beside the process's metrics
    scraped.register(WorkerCollector(worker))

    # Registered first on purpose: faust's production index blueprint also mounts GET "/" when the server starts,
    # and aiohttp only refuses a second GET "/" if it comes right after the first; this way ours answers.
    @app.page("/", name="page")
    class PageView(View):
        """The status page: static HTML (no data, no secrets); its script fetches the JSON with the token."""

        async def get(self, request: Request) -> Response:
            return self.html(PAGE)

    class Secured(View):
        """A view that wants the bearer token when one is configured (401 JSON otherwise)."""

        async def dispatch(self, request: Any) -> Any:
            if not authorized(token, request.headers.get("Authorization")):
                return self.json({"error": "unauthorized", "detail": "send Authorization: Bearer <token>"},
                                 status=401, headers={"WWW-Authenticate": 'Bearer realm="leads-data-sync"'})
            return await super().dispatch(request)

    def entity_view(kind: str, table: TableT) -> None:
        class EntityView(Secured):
            @app.table_route(table=table, match_info="entity")  # type: ignore[arg-type]
            async def get(self, request: Request, entity: str) -> Response:
                snapshot = table.get(entity)
                if snapshot is None:
                    return self.json({"error": "not found", "kind": kind, "entity": entity,
                                      "worker": worker_identity(self.app)}, status=404)
                return self.json({"kind": kind, "entity": entity, "snapshot": snapshot.asdict(),
                                  "worker": worker_identity(self.app)})

        EntityView.__name__ = EntityView.__qualname__ = f"{kind.capitalize()}EntityView"
        app.page(f"/entities/{kind}/{{entity}}", name=f"entity-{kind}")(EntityView)

    for kind, table in tables.items():
        entity_view(kind, table)

    @app.page("/entities/{kind}/{entity}", name="entity-unknown-kind")
    class UnknownKindView(Secured):
        async def get(self, request: Request, kind: str, entity: str) -> Response:
            return self.json({"error": f"unknown kind {kind!r}", "kinds": sorted(tables)}, status=404)

    @app.page("/tables/{kind}", name="table-keys")
    class TableKeysView(Secured):
        async def get(self, request: Request, kind: str) -> Response:
            table = tables.get(kind)
            if table is None:
                return self.json({"error": f"unknown kind {kind!r}", "kinds": sorted(tables)}, status=404)
            limit = _int_arg(request, "limit", 100, MAX_LIMIT)
            offset = _int_arg(request, "offset", 0, 2**31)
            partitions, keys = await local_keys(app, table)
            return self.json({
                "kind": kind, "table": table.name, "scope": "this worker's active partitions only",
                "partitions": partitions, "count": len(keys), "offset": offset, "limit": limit,
                "keys": keys[offset : offset + limit], "worker": worker_identity(self.app),
            })

    @app.page("/status", name="status")
    class StatusView(Secured):
        async def get(self, request: Request) -> Response:
            body: dict[str, Any] = {
                "worker": worker_identity(self.app),
                "note": "counts are this worker's since it started; only the leader polls SFMC",
                "business_units": business_units(worker),
                "refused_rows_dropped": metrics.totals(metrics.refused_rows_dropped, "tenant"),
                "generated_at": time.time(),
            }
            consumed = {topics[name] for agent in app.agents.values() for name in agent.channel.topics
                        if name in topics}
            try:
                report = topic_report(await offsets.read(topics), topics, consumed)
                newest = (await letters.refresh()).newest_at
            except Exception as exc:  # Kafka unreachable: say so, keep the rest
                log.warning("status: reading offsets failed: %s", type(exc).__name__)
                body.update(topics=None, dead_letters=None, acks_pending=None,
                            kafka_error=f"{type(exc).__name__}: {exc}")
                return self.json(body, status=200)
            report.get("dead-letter", {})["newest_at"] = newest
            body.update(topics=report, dead_letters=report.get("dead-letter", {}).get("records", 0),
                        acks_pending=report.get("acks", {}).get("lag", 0))
            return self.json(body)

    @app.page("/dead-letters", name="dead-letters")
    class DeadLettersView(Secured):
        """``?stage=&tenant=&since=&until=`` (epoch seconds) filter; ``examples`` per reason (at most 20)."""

        async def get(self, request: Request) -> Response:
            try:
                index = await letters.refresh()
            except Exception as exc:  # Kafka unreachable
                return self.json({"error": "Kafka unavailable", "detail": f"{type(exc).__name__}: {exc}"}, status=503)
            query = request.query
            body = index.report(stage=query.get("stage") or None, tenant=query.get("tenant"),
                                since=_time_arg(request, "since"), until=_time_arg(request, "until"),
                                examples=_int_arg(request, "examples", 5, 20))
            return self.json({**body, "letters_read": index.letters, "behind": letters.behind,
                              "filters": {name: query.get(name) for name in ("stage", "tenant", "since", "until")
                                          if query.get(name)}})

    @app.page("/rates", name="rates")
    class RatesView(Secured):
        async def get(self, request: Request) -> Response:
            return self.json({**history.rates(), "worker": worker_identity(self.app)})

    @app.timer(INTERVAL, name="rate-samples")
    async def sample_rates() -> None:
        history.sample(time.time())

    @app.page("/health", name="health")
    class HealthView(View):
        """Not behind the token: orchestration probes it. 200 once partitions are assigned, 503 otherwise."""

        async def get(self, request: Request) -> Response:
            try:
                assigned = len(self.app.consumer.assignment())
            except Exception:  # consumer not started yet
                assigned = 0
            ok = assigned > 0 and not self.app.should_stop
            return self.json({"status": "ok" if ok else "unavailable", "assigned_partitions": assigned,
                              "rebalancing": bool(self.app.rebalancing)}, status=200 if ok else 503)

    @app.page("/metrics", name="metrics")
    class MetricsView(Secured):
        async def get(self, request: Request) -> Response:
            return self.bytes(metrics_text(scraped), headers={"Content-Type": METRICS_CONTENT_TYPE})

    @app.on_before_shutdown.connect  # type: ignore[arg-type]  # faust types its receivers loosely
    async def close_offsets(app_: object, **kwargs: object) -> None:
        await offsets.close()
        await letters.close()
