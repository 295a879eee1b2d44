"""Pipeline status: end and committed offsets of our topics, lag, polls per business unit, dead letters.

Offsets come from a small group-less consumer (beginning and end offsets) and an admin client (our
consumer group's committed offsets), both on the web server's loop, opened on first use and reused;
a report is cached for a couple of seconds so a busy page costs the broker little.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

CACHE_SECONDS = 2.0
"""Seconds a read's offsets are reused for the same topics."""
TIMEOUT_SECONDS = 10.0
"""Seconds a read of the broker may take before it fails."""


@dataclass(frozen=True)
class Offsets:
    """One partition: first and next offsets in the log, and our group's committed offset (None if none)."""

    topic: str
    partition: int
    earliest: int
    end: int
    committed: int | None

    @property
    def lag(self) -> int:
        """Records not yet processed by our group (from the log start when nothing is committed)."""
        return max(0, self.end - max(self.committed if self.committed is not None else 0, self.earliest))


def topic_report(offsets: Iterable[Offsets], names: Mapping[str, str],
                 consumed: Collection[str]) -> dict[str, Any]:
    """Per topic (by its short name, ``names``: full → short): ``records`` held, ``end`` and the partitions
    (earliest and end offsets); for the topics this application consumes (short names in ``consumed``) also the
    group's committed offsets and ``lag``. A topic nothing of ours consumes has no lag to speak of."""
    report: dict[str, Any] = {}
    for item in sorted(offsets, key=lambda o: (o.topic, o.partition)):
        name = names.get(item.topic, item.topic)
        mine = name in consumed
        topic = report.setdefault(name, {"topic": item.topic, "records": 0, "end": 0, "partitions": [],
                                         **({"lag": 0} if mine else {})})
        partition: dict[str, Any] = {"partition": item.partition, "earliest": item.earliest, "end": item.end}
        if mine:
            partition.update(committed=item.committed, lag=item.lag)
            topic["lag"] += item.lag
        topic["partitions"].append(partition)
        topic["records"] += item.end - item.earliest
        topic["end"] += item.end
    return report


def client_options(app: faust.types.AppT, purpose: str) -> dict[str, Any]:
    """aiokafka client options on ``app``'s broker and credentials, with client id ``{app id}-{purpose}``."""
    conf = app.conf
    servers = [f"{url.host}:{url.port or 9092}" for url in conf.broker]
    return {"bootstrap_servers": servers, "client_id": f"{conf.id}-{purpose}",
            **credentials_to_aiokafka_auth(conf.broker_credentials)}


def worker_identity(app: faust.types.AppT) -> dict[str, Any]:
    """Which worker answered: its URL, whether it is the leader (only the leader polls SFMC), its pid, and its
    event loop's class (``uvloop.Loop``, or asyncio's ``_UnixSelectorEventLoop``; ``LEADS_EVENT_LOOP``)."""
    try:
        leader = bool(app.is_leader())
    except Exception:  # before the first assignment
        leader = False
    loop = type(app.loop)
    return {"url": str(app.conf.canonical_url), "leader": leader, "pid": os.getpid(),
            "event_loop": f"{loop.__module__}.{loop.__qualname__}"}


class OffsetReader:
    """Reads offsets of a set of topics for ``app``'s consumer group (``conf.id``), with clients on the app's
    broker and credentials."""

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self._consumer: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._lock = asyncio.Lock()
        self._cache: tuple[float, tuple[str, ...], list[Offsets]] | None = None

    async def _clients(self) -> tuple[AIOKafkaConsumer, AIOKafkaAdminClient]:
        if self._consumer is None or self._admin is None:
            options = client_options(self.app, "web-status")
            consumer = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, **options)
            admin = AIOKafkaAdminClient(**options)
            try:
                await consumer.start()
                await admin.start()
            except BaseException:
                await consumer.stop()
                await admin.close()
                raise
            self._consumer, self._admin = consumer, admin
        return self._consumer, self._admin

    async def read(self, topics: Iterable[str]) -> list[Offsets]:
        """The ``Offsets`` of every partition of ``topics`` (a missing topic has none), each topic's in order; the
        same list again when asked for the same topics within ``CACHE_SECONDS``. Raises ``TimeoutError`` after
        ``TIMEOUT_SECONDS``, or what aiokafka raises, having closed the clients (the next read reopens them)."""
        wanted = tuple(sorted(set(topics)))
        async with self._lock:
            cached = self._cache
            if cached and cached[1] == wanted and time.monotonic() - cached[0] < CACHE_SECONDS:
                return cached[2]
            try:
                result = await asyncio.wait_for(self._read(wanted), TIMEOUT_SECONDS)
            except BaseException:
                await self.close()  # a broken connection is reopened on the next request
                raise
            self._cache = (time.monotonic(), wanted, result)
            return result

    async def _read(self, topics: tuple[str, ...]) -> list[Offsets]:
        consumer, admin = await self._clients()
        described = await admin.describe_topics(list(topics))  # a missing topic comes back with no partitions
        tps = [TopicPartition(topic["topic"], part["partition"]) for topic in described
               for part in sorted(topic["partitions"], key=lambda p: p["partition"])]
        if not tps:
            return []
        earliest = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
        committed = await admin.list_consumer_group_offsets(self.app.conf.id, partitions=tps)
        result = []
        for tp in tps:
            meta = committed.get(tp)
            offset = meta.offset if meta is not None and meta.offset >= 0 else None
            result.append(Offsets(tp.topic, tp.partition, earliest[tp], end[tp], offset))
        return result

    async def close(self) -> None:
        """Close the consumer and admin client opened so far and drop the cached offsets."""
        consumer, admin, self._consumer, self._admin, self._cache = self._consumer, self._admin, None, None, None
        if consumer is not None:
            await consumer.stop()
        if admin is not None:
            await admin.close()
