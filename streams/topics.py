"""The topics of the topology (DESIGN.md) and the sends onto them: ``Topics``. Keys are strings; values are
records of ``streams.topic_records``."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Awaitable, Iterable, Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Any

import faust
import orjson
from aiokafka.partitioner import murmur2
from faust.types import RecordMetadata

from streams import metrics
from streams.chunking import chunks
from streams.entity_ids import EntityType, entity
from streams.settings import Settings
from streams.topic_records import (
    AckBatch,
    ClickEvent,
    ClickEvents,
    ClickRows,
    DeadLetter,
    DeadLetterStage,
    EntityChanges,
    EntityRequest,
    EntitySnapshot,
)

Pending = list[Awaitable[RecordMetadata]]
"""Futures of records sent to Kafka: awaited, they say Kafka has them."""

ROWS_PER_RECORD = 1000
ROW_BYTES_PER_RECORD = 512 * 1024
"""At most this many rows, and about this many bytes of them, in one ``click-rows`` record (Kafka's
default message limit is 1 MB; a row's LinkContent alone may be 8 KB)."""
ACK_ROWS_PER_RECORD = 1000
"""At most this many rows in one ``acks`` record (a row's keys are about 150 bytes)."""
SNAPSHOTS_PER_RECORD = 100
"""At most this many snapshots in one ``entity-changes`` record (a snapshot is a few KB at most)."""


class Topics:
    """The topics of one app (``settings.topic_prefix`` + name; partitions ``settings.topic_partitions`` unless
    said) and every send onto them: records sized for Kafka, keyed and partitioned as their consumers need."""

    def __init__(self, app: faust.App, settings: Settings) -> None:
        self.app = app
        self.partitions = settings.topic_partitions

        def topic(name: str, **options: Any) -> faust.TopicT:
            # internal: the worker creates our topics (with their partition counts) before subscribing
            return app.topic(settings.topic_prefix + name, key_type=str, internal=True, **options)

        self.click_rows = topic("click-rows", value_type=ClickRows)
        self.click_events = topic("click-events", value_type=ClickEvents)
        self.requests: dict[EntityType, faust.TopicT] = {
            "send": topic("send-requests", value_type=EntityRequest),
            "subscriber": topic("subscriber-requests", value_type=EntityRequest),
            "email": topic("email-requests", value_type=EntityRequest),
            # Folders are few and a folder's path needs its parents: one partition keeps them all on one worker.
            "category": topic("category-requests", value_type=EntityRequest, partitions=1),
        }
        """The request topic of each kind of entity, which that kind's resolver consumes."""
        # The models sink joins a send with its email's category: one partition keeps that join local.
        self.entity_changes = topic("entity-changes", value_type=EntityChanges, partitions=1)
        self.acks = topic("acks", value_type=AckBatch)
        self.dead_letter = topic("dead-letter", value_type=DeadLetter)

    def by_name(self) -> dict[str, str]:
        """``{full topic name: short name}`` of every topic (``click-rows``, ``send-requests``...)."""
        topics = [self.click_rows, self.click_events, *self.requests.values(), self.entity_changes, self.acks,
                  self.dead_letter]
        prefix_length = len(self.click_rows.get_topic_name()) - len("click-rows")
        return {topic.get_topic_name(): topic.get_topic_name()[prefix_length:] for topic in topics}

    async def flush(self) -> None:
        """Return once the app's producer has sent every record it buffered."""
        await self.app.producer.flush()

    def send_partition(self, tenant: str, job_id: str) -> int:
        """The partition of a click row's ``click-rows`` and ``click-events`` records: its send entity's."""
        return partition_of(entity(tenant, "send", job_id), self.partitions)

    def request_partitions(self, kind: EntityType) -> int:
        """How many partitions the kind's request topic (and its tables) has."""
        return self.requests[kind].partitions or self.partitions

    async def append_click_rows(self, tenant: str, rows: Iterable[dict[str, str]], *, read_at: float,
                                source: str) -> Pending:
        """Append rows to ``click-rows``: one record per partition of their sends (``send_partition``, key
        ``{tenant}:{partition}``), split where Kafka's message limit needs it. ``read_at`` is epoch seconds;
        await the returned futures to know Kafka has them."""
        by_partition: dict[int, list[dict[str, str]]] = defaultdict(list)
        for row in rows:
            by_partition[self.send_partition(tenant, (row.get("JobID") or "").strip())].append(row)
        return [
            await self.click_rows.send(key=f"{tenant}:{partition}", partition=partition, value=ClickRows(
                tenant=tenant, rows=chunk, read_at=read_at, source=source))
            for partition, partition_rows in by_partition.items()
            for chunk in _row_chunks(partition_rows)
        ]

    async def send_click_events(self, tenant: str, clicks: Mapping[str, Sequence[ClickEvent]]) -> Pending:
        """Put clicks (by send entity) on ``click-events``: one record per partition of their sends. Await the
        returned futures to know Kafka has them."""
        sends: dict[int, dict[str, list[list[Any]]]] = defaultdict(dict)
        for send, events in clicks.items():
            sends[partition_of(send, self.partitions)][send] = [list(event) for event in events]
        return [await self.click_events.send(key=f"{tenant}:{partition}", partition=partition,
                                             value=ClickEvents(tenant=tenant, sends=by_send))
                for partition, by_send in sends.items()]

    async def send_acks(self, tenant: str, status: str, rows: Sequence[dict[str, str]],
                        reason: str = "") -> Pending:
        """Put rows to mark (their key values) on ``acks`` (key: the tenant), in records small enough for Kafka,
        and count them; await the returned futures to know Kafka has them."""
        metrics.acks_emitted.labels(status=status).inc(len(rows))
        return [await self.acks.send(key=tenant, value=AckBatch(tenant=tenant, status=status, rows=list(chunk),
                                                                reason=reason))
                for chunk in chunks(rows, ACK_ROWS_PER_RECORD)]

    async def publish_snapshots(self, snapshots: Sequence[EntitySnapshot]) -> Pending:
        """Put snapshots on ``entity-changes``, many to a record and in order (the topic has one partition);
        await the returned futures to know Kafka has them."""
        return [await self.entity_changes.send(key=chunk[0].kind, value=EntityChanges(snapshots=list(chunk)))
                for chunk in chunks(snapshots, SNAPSHOTS_PER_RECORD)]

    async def send_dead_letter(self, key: str, stage: str, reason: str, tenant: str,
                               source: dict[str, Any]) -> Awaitable[RecordMetadata]:
        """Put a dead letter on its topic (and count it); await the result to know Kafka has it.

        ``stage`` is a ``DeadLetterStage`` (a plain string naming one is taken too; any other raises
        ``ValueError``), and ``source`` has that stage's shape."""
        stage = DeadLetterStage(stage)
        metrics.dead_letters.labels(stage=stage, tenant=tenant).inc()
        return await self.dead_letter.send(key=key, value=DeadLetter(stage=stage, reason=reason, tenant=tenant,
                                                                     source=source, at=time.time()))

    async def request_entities(self, tenant: str, kind: EntityType, ids: Iterable[int | str], *,
                               acks: dict[str, list[str]] | None = None, attempt: int = 0,
                               refetch: bool = False) -> Pending:
        """Put requests for the ``kind`` entities ``ids`` of ``tenant`` on its request topic, one record per
        partition, routed where their entity keys live (``acks``: send id → ack codes seen with it; ``attempt``:
        how many times the ids were asked before; ``refetch``: fetch whatever the table holds); await the
        returned futures to know Kafka has them."""
        topic = self.requests[kind]
        by_partition: dict[int, list[str]] = defaultdict(list)
        partitions = self.request_partitions(kind)
        for ident in {str(i) for i in ids}:
            by_partition[partition_of(entity(tenant, kind, ident), partitions)].append(ident)
        return [await topic.send(key=f"{tenant}:{kind}:{partition}", partition=partition,
                                 value=EntityRequest(tenant=tenant, ids=sorted(chunk), acks=acks, attempt=attempt,
                                                     refetch=refetch))
                for partition, chunk in by_partition.items()]


def _row_chunks(rows: Iterable[dict[str, str]]) -> Iterator[list[dict[str, str]]]:
    chunk: list[dict[str, str]] = []
    size = 0
    for row in rows:
        row_size = len(orjson.dumps(row))
        if chunk and (len(chunk) >= ROWS_PER_RECORD or size + row_size > ROW_BYTES_PER_RECORD):
            yield chunk
            chunk, size = [], 0
        chunk.append(row)
        size += row_size
    if chunk:
        yield chunk


@lru_cache(maxsize=65_536)
def partition_of(key: str, partitions: int) -> int:
    """The partition (of ``partitions``) Kafka's default partitioner gives a table's ``key`` (faust serializes
    str table keys as JSON), so batched requests go where the keyed tables (``streams.tables.keyed``) keep that
    key. Cached: murmur2 is pure Python, and the same sends and subscribers come back with every page."""
    return (murmur2(orjson.dumps(key)) & 0x7FFFFFFF) % partitions
