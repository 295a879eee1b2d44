"""Replay: rebuild the MongoDB models from the event topics, without calling SFMC or sending acks; and
requeue dead letters (``requeue_dead_letters``).

``entity-changes`` (the models) and then ``click-events`` (the clicks) are read from the beginning, or
from a time, up to their end offsets when the replay starts, with a fresh consumer group that commits
nothing, and written through the same functions the sinks use.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import faust
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.adoption import check_adopted
from streams.clicks_sink import ClicksSink
from streams.connections import Connections
from streams.edges.formats import Message, MessageRejected, parse_ack_message, parse_message, read_message
from streams.entity_ids import EntityType, parse_entity
from streams.kafka_clients import connection_options, kafka_consumer, topic_partitions
from streams.models_sink import ModelsSink
from streams.mongo import ensure_indexes
from streams.outputs import KafkaClickOutputs, KafkaModelOutputs
from streams.settings import Settings
from streams.topic_records import DEAD_LETTER_SOURCE, ClickEvent, ClickEvents, DeadLetterStage, EntityChanges
from streams.topics import Topics

R = TypeVar("R", bound=faust.Record)
Progress = Callable[[str, int, int, float], None]
"""``progress(topic, records written so far, records in the range, seconds since the topic's replay started)``."""


async def _ranges(consumer: AIOKafkaConsumer, partitions: list[TopicPartition],
                  since: datetime | None) -> dict[TopicPartition, tuple[int, int]]:
    """Per partition, the offsets to replay: from the beginning (or ``since``) to the current end."""
    ends = await consumer.end_offsets(partitions)
    starts = await consumer.beginning_offsets(partitions)
    if since is not None:
        found = await consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in partitions})
        starts = {tp: found[tp].offset if found.get(tp) else ends[tp] for tp in partitions}
    return {tp: (starts[tp], ends[tp]) for tp in partitions if starts[tp] < ends[tp]}


async def replay_topic(settings: Settings, topic: str, record: type[R],
                       write: Callable[[Sequence[R]], Awaitable[None]], *, since: datetime | None, batch: int,
                       progress: Progress) -> int:
    """Write every record of ``topic`` from ``since`` (else the beginning) to its end as the call starts through
    ``write``, ``batch`` records at most a call, calling ``progress`` after each; return how many were written
    (0 when the topic does not exist)."""
    partitions = await topic_partitions(settings, topic)
    if not partitions:
        return 0
    async with kafka_consumer(settings, group_id=f"{settings.app_id}-replay-{uuid.uuid4().hex[:8]}") as consumer:
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


async def replay(settings: Settings, connections: Connections, topics: Topics, *, since: datetime | None = None,
                 batch: int = 500, progress: Progress) -> dict[str, int]:
    """Write ``entity-changes`` and then ``click-events`` (from ``since``, else the beginning) into the database
    of ``connections``, through the sinks' own classes; returns ``{topic: records replayed}``. Raises
    ``streams.adoption.NotAdopted`` when the legacy tenant's documents are not adopted yet."""
    db = connections.mongo()
    await check_adopted(db, settings.legacy_tenant)
    await ensure_indexes(db)
    ids = connections.document_ids()
    # the send/email join state, rebuilt as replay reads
    models = ModelsSink(db, {}, ids, KafkaModelOutputs(topics))
    sink = ClicksSink(db, ids, KafkaClickOutputs(topics))

    async def clicks(values: Sequence[ClickEvents]) -> None:
        # a refused click is dead-lettered; the live pipeline's rows are not touched (no ``unwritten`` record)
        _, refused = await sink.store(values)
        await asyncio.gather(*await sink.dead_letter(refused))

    counts = {
        "entity-changes": await replay_topic(settings, topics.entity_changes.get_topic_name(), EntityChanges,
                                             models.write, since=since, batch=batch, progress=progress),
        "click-events": await replay_topic(settings, topics.click_events.get_topic_name(), ClickEvents, clicks,
                                           since=since, batch=batch, progress=progress),
    }
    return counts


REQUEUE_GROUP = "{app_id}-requeue-{stage}"
"""The consumer group, one per dead-letter stage, that remembers which of that stage's letters were requeued:
per partition, its committed offset and metadata are a ``Requeued``."""

METADATA_CHARACTERS = 4000
"""Room for a ``Requeued`` in a committed offset's metadata (Kafka's ``offset.metadata.max.bytes``: 4096)."""


@dataclass(frozen=True)
class Requeued:
    """Which letters of one stage in one partition were requeued: every letter below ``end`` was read by a run and
    requeued, except those in the ``skipped`` ranges (first and last offset, both included; no letter of the
    stage in a range was requeued, unless ``metadata()`` merged ranges). A run reads those again and requeues
    each once it can be.

    Committed as the offset ``start`` (where the next run reads from) and ``metadata()``; a group's commit
    without metadata means no skipped letters."""

    end: int = 0
    skipped: tuple[tuple[int, int], ...] = ()

    @property
    def start(self) -> int:
        """The offset to commit, where the next run reads from: the first skipped letter's, else ``end``."""
        return self.skipped[0][0] if self.skipped else self.end

    def due(self, offset: int) -> bool:
        """Whether the letter at ``offset`` is still to be requeued."""
        return offset >= self.end or any(first <= offset <= last for first, last in self.skipped)

    def metadata(self) -> str:
        """``{end};{first}-{last},…``, at most ``METADATA_CHARACTERS`` long: where the ranges would not fit, the
        nearest ones are merged, so a letter requeued between them is requeued again (harmless: the pipeline's
        writes are idempotent) and none is given up."""
        ranges = list(self.skipped)
        while len(text := _metadata(self.end, ranges)) > METADATA_CHARACTERS:
            i = min(range(len(ranges) - 1), key=lambda i: ranges[i + 1][0] - ranges[i][1])
            ranges[i : i + 2] = [(ranges[i][0], ranges[i + 1][1])]
        return text

    @classmethod
    def committed(cls, offset: int, metadata: str) -> Requeued:
        """What a group's commit (``offset`` -1: none) says."""
        if offset < 0:
            return cls()
        end, _, ranges = metadata.partition(";")
        if not end:
            return cls(end=offset)  # committed by a run that kept no skipped letters
        pairs = (item.split("-") for item in ranges.split(",") if item)
        return cls(end=int(end), skipped=tuple((int(first), int(last)) for first, last in pairs))


def _metadata(end: int, ranges: Sequence[tuple[int, int]]) -> str:
    return f"{end};" + ",".join(f"{first}-{last}" for first, last in ranges)


class Skips:
    """The ranges of one stage's letters a run skipped in one partition, as it reads them in order."""

    def __init__(self) -> None:
        self.ranges: list[tuple[int, int]] = []
        self.open = False

    def note(self, offset: int, skipped: bool) -> None:
        """Note whether the stage's letter at ``offset`` (the next, in order) was skipped: skipped letters with
        none of the stage requeued between them share one range."""
        if skipped and self.open:
            self.ranges[-1] = (self.ranges[-1][0], offset)
        elif skipped:
            self.ranges.append((offset, offset))
        self.open = skipped


class Requeue:
    """The dead letters of one ``requeue_dead_letters`` run, gathered by where they go, and what became of each."""

    def __init__(self, tenants: frozenset[str]) -> None:
        self.tenants = tenants
        """The configured tenants: a letter of another is skipped."""
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

    def add(self, stage: DeadLetterStage, letter: Mapping[str, Any]) -> bool:
        """Gather one dead letter of ``stage`` (a ``DeadLetter`` as JSON) and return True, or count it as skipped
        with the reason (a source not of its stage's shape, or a body or tenant that still does not read) and
        return False."""
        try:
            self._gather(stage, letter["tenant"], letter["source"])
        except MessageRejected as exc:
            self.skip(stage.value, exc.reason)
        except (KeyError, TypeError, ValueError) as exc:
            self.skip(stage.value, f"its source is not the {stage} shape ({type(exc).__name__}: {exc})")
        else:
            self.requeued[stage.value] += 1
            return True
        return False

    def skip(self, stage: str, reason: str) -> None:
        """Count a letter of ``stage`` (any name, ``unknown`` too) as skipped for ``reason``."""
        self.skipped[stage][reason] += 1

    def _gather(self, stage: DeadLetterStage, tenant: str, source: dict[str, Any]) -> None:
        configured = self.tenants
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

    async def send(self, topics: Topics) -> None:
        """Send what was gathered onto ``topics``: rows to ``click-rows`` (past the seen-rows check: their first
        reading made no event), ids to their resolvers, row keys to ``acks``; return once Kafka has all of it."""
        now = time.time()
        for tenant, rows in self.rows.items():
            await topics.append_click_rows(tenant, rows, read_at=now, source=DEAD_LETTER_SOURCE)
        for tenant, clicks in self.clicks.items():
            await topics.send_click_events(tenant, clicks)
        for (tenant, kind), ids in self.entities.items():
            await topics.request_entities(tenant, kind, ids, refetch=True)
        for tenant, keys in self.acks.items():
            await topics.send_acks(tenant, "processed", keys)
        await topics.flush()

    def report(self) -> dict[str, Any]:
        """``{"requeued": {stage: letters}, "skipped": {stage: {reason: letters}}}``."""
        return {"requeued": dict(self.requeued),
                "skipped": {stage: dict(reasons) for stage, reasons in self.skipped.items()}}


STAGES = frozenset(stage.value for stage in DeadLetterStage)


async def requeue_dead_letters(settings: Settings, topics: Topics,
                               stages: Collection[DeadLetterStage] = tuple(DeadLetterStage)) -> dict[str, Any]:
    """Send the dead letters of ``stages`` back into the pipeline, each once (where each stage goes:
    ``DeadLetterStage``), and return ``Requeue.report()``.

    Each stage's consumer group (``REQUEUE_GROUP``) remembers, per partition, which of its letters were requeued
    (``Requeued``). A run reads the stage's letters still due, up to the topic's end as it starts, sends what
    it can requeue, waits for Kafka, then commits: a letter requeued is not read again; a letter skipped (its
    tenant not configured, say) stays due and is read again by every later run, which reports it as skipped
    until it can be requeued (after the fix) or the topic's retention drops it. A letter of no known stage is
    reported, as skipped, by the first run whose stages have not read past it."""
    requeue = Requeue(settings.tenants)
    partitions = await topic_partitions(settings, topics.dead_letter.get_topic_name())
    if not partitions or not stages:
        return requeue.report()
    groups = {stage: REQUEUE_GROUP.format(app_id=settings.app_id, stage=stage) for stage in stages}
    done = await _requeued(settings, groups, partitions)
    skips: dict[DeadLetterStage, dict[TopicPartition, Skips]] = {
        stage: {tp: Skips() for tp in partitions} for stage in groups}
    async with kafka_consumer(settings) as reader:
        ends = await reader.end_offsets(partitions)
        beginnings = await reader.beginning_offsets(partitions)
        starts = {tp: max(beginnings[tp], min(read[tp].start for read in done.values())) for tp in partitions}
        unread = {tp: min(read[tp].end for read in done.values()) for tp in partitions}
        async for tp, offset, letter in _letters(reader, starts, ends):
            name = letter.get("stage") if isinstance(letter, dict) else None
            if not isinstance(name, str) or name not in STAGES:
                if offset >= unread[tp]:
                    requeue.skip(name if isinstance(name, str) else "unknown",
                                 "not JSON" if letter is None else f"unknown stage {name}")
            elif (stage := DeadLetterStage(name)) in done:
                due = done[stage][tp].due(offset)
                skips[stage][tp].note(offset, due and not requeue.add(stage, letter))
        await requeue.send(topics)
    for stage, group in groups.items():
        async with kafka_consumer(settings, group_id=group) as consumer:
            consumer.assign(partitions)
            marks = {tp: Requeued(end=ends[tp], skipped=tuple(skips[stage][tp].ranges)) for tp in partitions}
            await consumer.commit({tp: (mark.start, mark.metadata()) for tp, mark in marks.items()})
    return requeue.report()


async def _requeued(settings: Settings, groups: Mapping[DeadLetterStage, str],
                    partitions: list[TopicPartition]) -> dict[DeadLetterStage, dict[TopicPartition, Requeued]]:
    """What each stage's group committed for each partition."""
    admin = AIOKafkaAdminClient(**connection_options(settings))
    await admin.start()
    try:
        committed = {stage: await admin.list_consumer_group_offsets(group, partitions=partitions)
                     for stage, group in groups.items()}
    finally:
        await admin.close()
    return {stage: {tp: Requeued.committed(offsets[tp].offset, offsets[tp].metadata or "") if tp in offsets
                    else Requeued() for tp in partitions} for stage, offsets in committed.items()}


def _json(value: bytes) -> Any:
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return None


async def _letters(consumer: AIOKafkaConsumer, starts: Mapping[TopicPartition, int],
                   ends: Mapping[TopicPartition, int]) -> AsyncIterator[tuple[TopicPartition, int, Any]]:
    """``(partition, offset, letter)`` of each dead letter from ``starts`` up to (not including) ``ends``; the
    letter is its decoded JSON, None where it is not JSON."""
    consumer.assign(list(starts))
    for tp, start in starts.items():
        consumer.seek(tp, start)
    pending = {tp for tp, start in starts.items() if start < ends[tp]}
    while pending:
        for tp, messages in (await consumer.getmany(*pending, timeout_ms=1000)).items():
            for message in messages:
                if message.value and message.offset < ends[tp]:
                    yield tp, message.offset, _json(message.value)
        pending = {tp for tp in pending if await consumer.position(tp) < ends[tp]}
