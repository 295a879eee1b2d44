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
from streams.web.page import PAGE
from streams.web.status import OffsetReader, topic_report, worker_identity

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


def polls(worker: Worker) -> dict[str, Any]:
    """Per tenant: whether this worker polled it, the last poll's start and end (epoch seconds), rows read by it
    and in total since this process started, and its error."""
    report = {}
    for unit in worker.settings.business_units:
        status = dict(worker.poller.status.get(unit.tenant) or {})
        report[unit.tenant] = {
            "polled_by_this_worker": bool(status),
            "last_poll_started": status.get("last_poll_started"),
            "last_poll_finished": status.get("last_poll_finished"),
            "rows_last_poll": status.get("rows_last_poll"),
            "rows_total": status.get("rows_total", 0),
            "last_error": status.get("last_error"),
        }
    return report


SFMC_CLIENT_STATS = {
    "requests": "HTTP requests sent to SFMC (every attempt, token requests included).",
    "retries": "SFMC requests retried after a throttle, timeout or server error.",
    "throttled": "SFMC answers with HTTP 429.",
    "token_refreshes": "OAuth tokens fetched.",
}
"""The SFMC client's ``stats`` that ``/metrics`` serves as ``leads_sfmc_{stat}_total``, with their help text."""


class WorkerCollector:
    """The samples of ``worker`` that are read when ``/metrics`` is scraped, not counted in ``streams.metrics``:
    the SFMC client's stats per business unit, and this worker's polls and leadership."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def collect(self) -> Iterator[Metric]:
        """``leads_sfmc_{stat}_total`` per tenant, ``leads_rows_read_total`` and
        ``leads_last_poll_finished_timestamp_seconds`` (epoch seconds) per tenant this worker polled, and
        ``leads_worker_is_leader`` (1 or 0)."""
        worker = self.worker
        for stat, help_text in SFMC_CLIENT_STATS.items():
            family = CounterMetricFamily(f"leads_sfmc_{stat}_total", help_text, labels=["tenant"])
            for unit in worker.settings.business_units:
                family.add_metric([unit.tenant], worker.connections.marketing_cloud(unit.tenant).stats.get(stat, 0))
            yield family
        rows = CounterMetricFamily("leads_rows_read_total", "Click-log rows read by this worker's polls.",
                                   labels=["tenant"])
        last = GaugeMetricFamily("leads_last_poll_finished_timestamp_seconds",
                                 "When this worker last finished polling a business unit (leader only).",
                                 labels=["tenant"])
        for tenant, status in sorted(worker.poller.status.items()):
            rows.add_metric([tenant], status.get("rows_total", 0))
            if status.get("last_poll_finished"):
                last.add_metric([tenant], status["last_poll_finished"])
        yield rows
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
    """Add the views to ``worker.app``: ``/`` (the status page), ``/status``, ``/health``, ``/metrics``,
    ``/entities/{kind}/{entity}`` and ``/tables/{kind}``; all but ``/`` and ``/health`` want the bearer token
    when ``LEADS_WEB_TOKEN`` is set."""
    app, token = worker.app, worker.settings.web_token
    tables = {kind: worker.tables.entities[kind] for kind in ("send", "subscriber", "email", "category")}
    topics = worker.topics.by_name()
    offsets = OffsetReader(app)
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
                "note": "only the leader worker polls SFMC: business-unit polls are this worker's view",
                "business_units": polls(worker),
                "generated_at": time.time(),
            }
            try:
                report = topic_report(await offsets.read(topics), topics)
            except Exception as exc:  # Kafka unreachable: say so, keep the rest
                log.warning("status: reading offsets failed: %s", type(exc).__name__)
                body.update(topics=None, dead_letters=None, acks_pending=None,
                            kafka_error=f"{type(exc).__name__}: {exc}")
                return self.json(body, status=200)
            body.update(
                topics=report,
                dead_letters=report.get("dead-letter", {}).get("records", 0),
                acks_pending=report.get("acks", {}).get("lag", 0),
                refused_rows_dropped=metrics.totals(metrics.refused_rows_dropped, "tenant"),
            )
            return self.json(body)

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
