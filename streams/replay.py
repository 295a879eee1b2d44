"""Replay: rebuild the MongoDB models from the event topics, without calling SFMC or sending acks.

``entity-changes`` (the models) and then ``click-events`` (the clicks) are read from the beginning, or
from a time, up to their end offsets when the replay starts, with a fresh consumer group that commits
nothing, and written through the same functions the sinks use.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.app import settings
from streams.kafka import kafka_consumer, read_topic, topic_partitions
from streams.models import DEAD_LETTER_SOURCE, ClickEvents, EntityChanges
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
    from streams.agents.clicks_sink import store_clicks
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
        await store_clicks(values, ids)

    counts = {
        "entity-changes": await replay_topic(entity_changes.get_topic_name(), EntityChanges, models,
                                             since=since, batch=batch, progress=progress),
        "click-events": await replay_topic(click_events.get_topic_name(), ClickEvents, clicks,
                                           since=since, batch=batch, progress=progress),
    }
    return counts


async def requeue_dead_letters(stage: str | None) -> dict[str, int]:
    """Send dead letters back: ingest rows to ``click-rows`` (past the seen-rows check), entities to their
    resolver, refused acks to the acker. Returns how many of each stage were requeued."""
    from streams.entities import parse_entity
    from streams.tables.entities import request
    from streams.topics import (
        append_click_rows,
        category_requests,
        email_requests,
        send_acks,
        send_requests,
        subscriber_requests,
    )

    resolvers = {"send": send_requests, "subscriber": subscriber_requests, "email": email_requests,
                 "category": category_requests}
    counts: dict[str, int] = defaultdict(int)
    rows: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    for letter in await read_topic(dead_letter.get_topic_name()):
        if stage and letter["stage"] != stage:
            continue
        counts[letter["stage"]] += 1
        tenant, source = letter["tenant"], letter["source"]
        if letter["stage"] == "ingest":
            rows[tenant, str(source.get("JobID", "")).strip()].append(source)
        elif letter["stage"].startswith("resolve-"):
            _, kind, ident = parse_entity(source["entity"])
            await request(resolvers[kind], tenant, kind, [ident])
        elif letter["stage"] == "ack":
            await send_acks(tenant, "processed", [source["keys"]])
    for (tenant, job_id), job_rows in rows.items():
        await append_click_rows(tenant, job_id, job_rows, read_at=time.time(), source=DEAD_LETTER_SOURCE)
    return dict(counts)
