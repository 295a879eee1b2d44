"""The web views: JSON over faust's web server (``@app.page``), entity lookups routed with ``@app.table_route``."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Iterator
from typing import Any

from aiokafka.partitioner import murmur2
from faust.types import TableT
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from streams import metrics
from streams.agents.source import poll_status
from streams.app import app, settings
from streams.resources import marketing_cloud
from streams.tables.entities import categories_table, emails_table, sends_table, subscribers_table
from streams.topics import (
    acks,
    category_requests,
    click_events,
    click_rows,
    dead_letter,
    email_requests,
    entity_changes,
    send_requests,
    subscriber_requests,
)
from streams.web.page import PAGE
from streams.web.status import OffsetReader, topic_report, worker_identity

log = logging.getLogger(__name__)

TABLES: dict[str, TableT] = {
    "send": sends_table,
    "subscriber": subscribers_table,
    "email": emails_table,
    "category": categories_table,
}
TOPICS = {topic.get_topic_name(): short for short, topic in {
    "click-rows": click_rows, "click-events": click_events, "send-requests": send_requests,
    "subscriber-requests": subscriber_requests, "email-requests": email_requests,
    "category-requests": category_requests, "entity-changes": entity_changes, "acks": acks,
    "dead-letter": dead_letter,
}.items()}
MAX_LIMIT = 1000
offsets = OffsetReader(app)


# Registered first on purpose: faust's production index blueprint also mounts GET "/" when the server starts,
# and aiohttp only refuses a second GET "/" if it comes right after the first; this way ours answers.
@app.page("/", name="page")
class PageView(View):
    """The status page: static HTML (no data, no secrets); its script fetches the JSON with the token."""

    async def get(self, request: Request) -> Response:
        return self.html(PAGE)


def authorized(header: str | None) -> bool:
    """True when no token is configured, or the request carries ``Authorization: Bearer <token>``."""
    if settings.web_token is None:
        return True
    scheme, _, given = (header or "").partition(" ")
    expected = settings.web_token.get_secret_value()
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected.encode())


class Secured(View):
    """A view that wants the bearer token when one is configured (401 JSON otherwise)."""

    async def dispatch(self, request: Any) -> Any:
        if not authorized(request.headers.get("Authorization")):
            return self.json({"error": "unauthorized", "detail": "send Authorization: Bearer <token>"},
                             status=401, headers={"WWW-Authenticate": 'Bearer realm="leads-data-sync"'})
        return await super().dispatch(request)


def _entity_view(kind: str, table: TableT) -> type[View]:
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
    return app.page(f"/entities/{kind}/{{entity}}", name=f"entity-{kind}")(EntityView)


ENTITY_VIEWS = {kind: _entity_view(kind, table) for kind, table in TABLES.items()}


@app.page("/entities/{kind}/{entity}", name="entity-unknown-kind")
class UnknownKindView(Secured):
    async def get(self, request: Request, kind: str, entity: str) -> Response:
        return self.json({"error": f"unknown kind {kind!r}", "kinds": sorted(TABLES)}, status=404)


def _int_arg(request: Request, name: str, default: int, high: int) -> int:
    try:
        return min(max(int(request.query.get(name, default)), 0), high)
    except ValueError:
        return default


async def local_keys(table: TableT) -> tuple[list[int], list[str]]:
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


@app.page("/tables/{kind}", name="table-keys")
class TableKeysView(Secured):
    async def get(self, request: Request, kind: str) -> Response:
        table = TABLES.get(kind)
        if table is None:
            return self.json({"error": f"unknown kind {kind!r}", "kinds": sorted(TABLES)}, status=404)
        limit = _int_arg(request, "limit", 100, MAX_LIMIT)
        offset = _int_arg(request, "offset", 0, 2**31)
        partitions, keys = await local_keys(table)
        return self.json({
            "kind": kind, "table": table.name, "scope": "this worker's active partitions only",
            "partitions": partitions, "count": len(keys), "offset": offset, "limit": limit,
            "keys": keys[offset : offset + limit], "worker": worker_identity(self.app),
        })


def _polls() -> dict[str, Any]:
    polls = {}
    for unit in settings.business_units:
        status = dict(poll_status.get(unit.tenant) or {})
        polls[unit.tenant] = {
            "polled_by_this_worker": bool(status),
            "last_poll_started": status.get("last_poll_started"),
            "last_poll_finished": status.get("last_poll_finished"),
            "rows_last_poll": status.get("rows_last_poll"),
            "rows_total": status.get("rows_total", 0),
            "last_error": status.get("last_error"),
        }
    return polls


@app.page("/status", name="status")
class StatusView(Secured):
    async def get(self, request: Request) -> Response:
        body: dict[str, Any] = {
            "worker": worker_identity(self.app),
            "note": "only the leader worker polls SFMC: business-unit polls are this worker's view",
            "business_units": _polls(),
            "generated_at": time.time(),
        }
        try:
            topics = topic_report(await offsets.read(TOPICS), TOPICS)
        except Exception as exc:  # Kafka unreachable: say so, keep the rest
            log.warning("status: reading offsets failed: %s", type(exc).__name__)
            body.update(topics=None, dead_letters=None, acks_pending=None,
                        kafka_error=f"{type(exc).__name__}: {exc}")
            return self.json(body, status=200)
        body.update(
            topics=topics,
            dead_letters=topics.get("dead-letter", {}).get("records", 0),
            acks_pending=topics.get("acks", {}).get("lag", 0),
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


SFMC_CLIENT_STATS = {
    "requests": "HTTP requests sent to SFMC (every attempt, token requests included).",
    "retries": "SFMC requests retried after a throttle, timeout or server error.",
    "throttled": "SFMC answers with HTTP 429.",
    "token_refreshes": "OAuth tokens fetched.",
}
"""The SFMC client's ``stats`` that ``/metrics`` serves as ``leads_sfmc_{stat}_total``, with their help text."""


class WorkerCollector:
    """The samples that are read when ``/metrics`` is scraped, not counted in ``streams.metrics``: the SFMC
    client's stats per business unit, and this worker's polls and leadership."""

    def collect(self) -> Iterator[Metric]:
        """``leads_sfmc_{stat}_total`` per tenant, ``leads_rows_read_total`` and
        ``leads_last_poll_finished_timestamp_seconds`` (epoch seconds) per tenant this worker polled, and
        ``leads_worker_is_leader`` (1 or 0)."""
        for stat, help_text in SFMC_CLIENT_STATS.items():
            family = CounterMetricFamily(f"leads_sfmc_{stat}_total", help_text, labels=["tenant"])
            for unit in settings.business_units:
                family.add_metric([unit.tenant], marketing_cloud(unit.tenant).stats.get(stat, 0))
            yield family
        rows = CounterMetricFamily("leads_rows_read_total", "Click-log rows read by this worker's polls.",
                                   labels=["tenant"])
        last = GaugeMetricFamily("leads_last_poll_finished_timestamp_seconds",
                                 "When this worker last finished polling a business unit (leader only).",
                                 labels=["tenant"])
        for tenant, status in sorted(poll_status.items()):
            rows.add_metric([tenant], status.get("rows_total", 0))
            if status.get("last_poll_finished"):
                last.add_metric([tenant], status["last_poll_finished"])
        yield rows
        yield last
        yield GaugeMetricFamily("leads_worker_is_leader", "1 on the leader worker (the one polling).",
                                value=1 if worker_identity(app)["leader"] else 0)


metrics.REGISTRY.register(WorkerCollector())


@app.page("/metrics", name="metrics")
class MetricsView(Secured):
    async def get(self, request: Request) -> Response:
        # the plain text format generate_latest writes (CONTENT_TYPE_LATEST names version 1.0.0 since 0.23)
        return self.bytes(generate_latest(metrics.REGISTRY), headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})


@app.on_before_shutdown.connect  # type: ignore[arg-type]  # faust types its receivers loosely
async def _close_offsets(app_: object, **kwargs: object) -> None:
    await offsets.close()
