"""Replay: rebuild the MongoDB models from the event topics, without calling SFMC or sending acks.

``entity-changes`` (the models) and then ``click-events`` (the clicks) are read from the beginning, or
from a time, up to their end offsets when the replay starts, with a fresh consumer group that commits
nothing, and written through the same functions the sinks use.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import faust
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.app import app, settings
from streams.bridge import tenants
from streams.edges import Message, MessageRejected, parse_ack_message, parse_message, read_message
from streams.entities import EntityType, parse_entity
from streams.kafka import kafka_consumer, topic_partitions
from streams.models import DEAD_LETTER_SOURCE, ClickEvent, ClickEvents, DeadLetterStage, EntityChanges
from streams.topics import click_events, dead_letter, entity_changes

R = TypeVar("R", bound=faust.Record)
Progress = Callable[[str, int, int, float], None]


async def _ranges(consumer: AIOKafkaConsumer, partitions: list[TopicPartition],
                  since: datetime | None) -> dict[TopicPartition, tuple[int, int]]:
    """Per partition, the offsets to replay: from the beginning (or ``since``) to the current end."""
    ends = await consumer.end_offsets(partitions)
    starts = await consumer.beginning_offsets(partitions)
    if since is not None:
        found = await consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in partitions})
        starts = {tp: found[tp].offset if found.get(tp) else ends[tp] for tp in partitions}
    return {tp: (starts[tp], ends[tp]) for tp in partitions if starts[tp] < ends[tp]}


async def replay_topic(topic: str, record: type[R], write: Callable[[Sequence[R]], Awaitable[None]], *,
                       since: datetime | None, batch: int, progress: Progress) -> int:
    """Write every record of ``topic`` in the range through ``write``; return how many were written."""
    partitions = await topic_partitions(topic)
    if not partitions:
        return 0
    async with kafka_consumer(group_id=f"{settings.app_id}-replay-{uuid.uuid4().hex[:8]}") as consumer:
        ranges = await _ranges(consumer, partitions, since)
        total = sum(end - start for start, end in ranges.values())
        consumer.assign(list(ranges))
        for tp, (start, _) in ranges.items():
            consumer.seek(tp, start)
        done, started = 0, time.monotonic()
        while ranges:
            fetched = await consumer.getmany(timeout_ms=1000, max_records=batch)
            values: list[R] = []
            for tp, messages in fetched.items():
                end = ranges.get(tp, (0, 0))[1]
                values.extend(record.loads(m.value, default_serializer="json") for m in messages if m.offset < end)
                if messages and messages[-1].offset + 1 >= end:
                    ranges.pop(tp, None)
                    consumer.pause(tp)
            if values:
                await write(values)
                done += len(values)
                progress(topic, done, total, time.monotonic() - started)
        return done


async def replay(*, since: datetime | None = None, batch: int = 500, progress: Progress) -> dict[str, Any]:
    from streams.adoption import check_adopted
    from streams.agents.clicks_sink import dead_letter_clicks, store_clicks
    from streams.agents.models_sink import write_models
    from streams.mongo import ensure_indexes
    from streams.resources import document_ids, mongo

    await check_adopted(mongo(), settings.legacy_tenant)
    await ensure_indexes()
    links: dict[str, Any] = {}
    ids = document_ids()

    async def models(values: Sequence[EntityChanges]) -> None:
        await write_models([snapshot for changes in values for snapshot in changes.snapshots], links, ids)

    async def clicks(values: Sequence[ClickEvents]) -> None:
        # a refused click is dead-lettered; the live pipeline's rows are not touched (no ``unwritten`` record)
        _, refused = await store_clicks(values, ids)
        await asyncio.gather(*await dead_letter_clicks(refused))

    counts = {
        "entity-changes": await replay_topic(entity_changes.get_topic_name(), EntityChanges, models,
                                             since=since, batch=batch, progress=progress),
        "click-events": await replay_topic(click_events.get_topic_name(), ClickEvents, clicks,
                                           since=since, batch=batch, progress=progress),
    }
    return counts


REQUEUE_GROUP = "{app_id}-requeue-{stage}"
"""The consumer group, one per dead-letter stage, that remembers how far that stage's letters were requeued."""


class Requeue:
    """The dead letters of one ``requeue_dead_letters`` run, gathered by where they go, and what became of each."""

    def __init__(self) -> None:
        self.rows: dict[str, list[dict[str, str]]] = defaultdict(list)
        """tenant → click rows for ``click-rows``."""
        self.clicks: dict[str, dict[str, list[ClickEvent]]] = defaultdict(lambda: defaultdict(list))
        """tenant → send entity → clicks for ``click-events``."""
        self.entities: dict[tuple[str, EntityType], set[str]] = defaultdict(set)
        """(tenant, kind) → ids for the kind's resolver, fetched now whatever its table and retries hold."""
        self.acks: dict[str, list[dict[str, str]]] = defaultdict(list)
        """tenant → key values of rows to mark processed."""
        self.requeued: Counter[str] = Counter()
        self.skipped: dict[str, Counter[str]] = defaultdict(Counter)

    def add(self, stage: DeadLetterStage, letter: Mapping[str, Any]) -> None:
        """Gather one dead letter of ``stage`` (a ``DeadLetter`` as JSON), or count it as skipped with the reason:
        a source not of its stage's shape, or a body or tenant that still does not read."""
        try:
            self._gather(stage, letter["tenant"], letter["source"])
        except MessageRejected as exc:
            self.skipped[stage.value][exc.reason] += 1
        except (KeyError, TypeError, ValueError) as exc:
            self.skipped[stage.value][f"its source is not the {stage} shape ({type(exc).__name__}: {exc})"] += 1
        else:
            self.requeued[stage.value] += 1

    def _gather(self, stage: DeadLetterStage, tenant: str, source: dict[str, Any]) -> None:
        configured = tenants()
        if stage is DeadLetterStage.INGEST:
            self._add_rows(read_message({"tenant": tenant, "row": source}, configured))
        elif stage is DeadLetterStage.ACK:
            self.acks[tenant].extend(read_message({"tenant": tenant, "row": source["keys"]}, configured).rows)
        elif stage is DeadLetterStage.ACKS_QUEUE:
            message = parse_ack_message(source["body"], configured)
            self.acks[message.tenant].extend(message.rows)
        elif stage in (DeadLetterStage.KINESIS, DeadLetterStage.SQS):
            self._add_rows(parse_message(source["body"], configured))
        elif stage is DeadLetterStage.WRITE_CLICKS:
            event = ClickEvent(**{name: source["event"][name] for name in ClickEvent._fields})
            self.clicks[self._configured(source["send"], configured)][source["send"]].append(event)
        else:  # resolve-{kind} or write-models: the model is fetched (again, now) and written
            _, kind, ident = parse_entity(source["entity"])
            self.entities[self._configured(source["entity"], configured), kind].add(ident)

    @staticmethod
    def _configured(key: str, configured: frozenset[str]) -> str:
        """The tenant of entity ``key``; raises ``MessageRejected`` when it is not a configured BU's."""
        tenant = parse_entity(key)[0]
        if tenant not in configured:
            raise MessageRejected(f"tenant {tenant!r} is not a configured business unit")
        return tenant

    def _add_rows(self, message: Message) -> None:
        self.rows[message.tenant].extend(message.rows)

    async def send(self) -> None:
        """Send what was gathered: rows to ``click-rows`` (past the seen-rows check: their first reading made no
        event), ids to their resolvers, row keys to ``acks``; return once Kafka has all of it."""
        from streams.tables.entities import request
        from streams.topics import (
            append_click_rows,
            category_requests,
            email_requests,
            send_acks,
            send_click_events,
            send_requests,
            subscriber_requests,
        )

        resolvers = {"send": send_requests, "subscriber": subscriber_requests, "email": email_requests,
                     "category": category_requests}
        now = time.time()
        for tenant, rows in self.rows.items():
            await append_click_rows(tenant, rows, read_at=now, source=DEAD_LETTER_SOURCE)
        for tenant, clicks in self.clicks.items():
            await send_click_events(tenant, clicks)
        for (tenant, kind), ids in self.entities.items():
            await request(resolvers[kind], tenant, kind, ids, refetch=True)
        for tenant, keys in self.acks.items():
            await send_acks(tenant, "processed", keys)
        await app.producer.flush()

    def report(self) -> dict[str, Any]:
        """``{"requeued": {stage: letters}, "skipped": {stage: {reason: letters}}}``."""
        return {"requeued": dict(self.requeued),
                "skipped": {stage: dict(reasons) for stage, reasons in self.skipped.items()}}


async def requeue_dead_letters(stages: Collection[DeadLetterStage] = tuple(DeadLetterStage)) -> dict[str, Any]:
    """Send the dead letters of ``stages`` back into the pipeline, each once (where each stage goes:
    ``DeadLetterStage``). Each stage's consumer group (``REQUEUE_GROUP``) holds how far its letters were
    requeued: a run reads from there to the topic's end as it starts, sends, waits for Kafka, then commits
    that end, so a second run requeues only letters written since. Returns ``Requeue.report()``."""
    requeue = Requeue()
    partitions = await topic_partitions(dead_letter.get_topic_name())
    if not partitions:
        return requeue.report()
    async with contextlib.AsyncExitStack() as stack:
        reader = await stack.enter_async_context(kafka_consumer())
        groups = {stage: await stack.enter_async_context(
                      kafka_consumer(group_id=REQUEUE_GROUP.format(app_id=settings.app_id, stage=stage)))
                  for stage in stages}
        ends = await reader.end_offsets(partitions)
        beginnings = await reader.beginning_offsets(partitions)
        starts: dict[DeadLetterStage, dict[TopicPartition, int]] = {}
        for stage, group in groups.items():
            group.assign(partitions)
            starts[stage] = {tp: max(await group.committed(tp) or 0, beginnings[tp]) for tp in partitions}
        first = {tp: min(start[tp] for start in starts.values()) for tp in partitions}
        async for tp, offset, letter in _letters(reader, first, ends):
            name = letter.get("stage")
            if name in starts and offset >= starts[name][tp]:
                requeue.add(DeadLetterStage(name), letter)
        await requeue.send()
        for group in groups.values():
            await group.commit({tp: ends[tp] for tp in partitions})
    return requeue.report()


async def _letters(consumer: AIOKafkaConsumer, starts: Mapping[TopicPartition, int],
                   ends: Mapping[TopicPartition, int]) -> AsyncIterator[tuple[TopicPartition, int, dict[str, Any]]]:
    """``(partition, offset, letter)`` of each dead letter from ``starts`` up to (not including) ``ends``."""
    consumer.assign(list(starts))
    for tp, start in starts.items():
        consumer.seek(tp, start)
    pending = {tp for tp, start in starts.items() if start < ends[tp]}
    while pending:
        for tp, messages in (await consumer.getmany(*pending, timeout_ms=1000)).items():
            for message in messages:
                if message.value and message.offset < ends[tp]:
                    yield tp, message.offset, orjson.loads(message.value)
        pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
