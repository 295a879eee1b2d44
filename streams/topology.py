"""The topology of a worker (DESIGN.md), wired on an app by ``wire``: every agent, timer and task, each a short
loop over logic that lives in plain classes (named below), and each topic's producers and consumer.

Each topic, its producers → its consumer:
- ``click-rows``: the SFMC poller (``streams.poller``), Kinesis and SQS ingress (``streams.edges``), the clicks
  sink (source ``unwritten``), marking (``refused``), ``replay-dead-letters`` → ``ingest`` (``streams.ingest``).
- ``click-events``: ingest, ``replay-dead-letters`` → ``clicks-sink`` (``streams.clicks_sink``).
- ``{kind}-requests`` (send, subscriber, email, category): ingest (sends, subscribers), the resolvers (what a
  snapshot refers to; due retries), ``replay-dead-letters`` → ``resolve-{kind}`` (``streams.resolvers``).
- ``entity-changes``: the resolvers → ``models-sink`` (``streams.models_sink``).
- ``acks``: ingest (skipped rows), the clicks sink (processed), ``replay-dead-letters`` → ``acker``
  (``streams.marking``; or the SQS acks queue, ``streams.edges.sqs_egress``).
- ``dead-letter``: every stage (``streams.outputs``) → ``leads-sync replay-dead-letters`` (a command).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import faust

from streams.adoption import check_adopted
from streams.batches import each_batch, each_event
from streams.clicks_sink import ClicksSink, failing_once
from streams.connections import Connections
from streams.edges.bridge import Bridge
from streams.edges.kinesis import ShardReader
from streams.edges.sqs_egress import AckQueue
from streams.edges.sqs_ingress import SqsIngress
from streams.entity_ids import EntityType
from streams.ingest import Ingest
from streams.marking import Marking
from streams.models_sink import ModelsSink
from streams.mongo import ensure_indexes
from streams.outputs import (
    KafkaClickOutputs,
    KafkaIngestOutputs,
    KafkaMarkingOutputs,
    KafkaModelOutputs,
    KafkaResolverOutputs,
)
from streams.poller import Poller
from streams.resolvers import CategoryResolver, EmailResolver, Resolver, ResolverSettings, SendResolver
from streams.settings import Settings
from streams.tables.catalog import Tables, declare_tables
from streams.topic_records import AckBatch
from streams.topics import Topics

ACK_RECORDS_PER_BATCH = 20
"""``acks`` records the acker marks together at most (each holds up to 1,000 rows)."""
REQUESTS_PER_WINDOW = 10_000
"""Request records a resolver gathers at most per window; the window (``fetch_window``) is what usually ends it."""

CLICKED_KINDS: frozenset[EntityType] = frozenset({"send", "subscriber"})
"""The entity kinds that ingest requests for the clicks; the resolvers request the others (a send's email, an
email's folder and the folder's parents)."""


@dataclass(frozen=True)
class Worker:
    """What ``wire`` built on an app: its settings, connections, topics, tables, the SFMC poller and the
    resolvers by kind (the web views read them)."""

    app: faust.App
    settings: Settings
    connections: Connections
    topics: Topics
    tables: Tables
    poller: Poller
    resolvers: dict[EntityType, Resolver]


def wire(app: faust.App, settings: Settings, connections: Connections) -> Worker:
    """Declare ``settings``' topics and tables on ``app`` and register its agents, timers and tasks: always
    ingest, the resolvers, both sinks and the acker; the SFMC poller when ``LEADS_POLL_CLICK_LOG`` is on; Kinesis
    and SQS ingress when their stream or queue is set."""
    topics = Topics(app, settings)
    tables = declare_tables(app, settings, topics)
    poller = Poller(settings, connections.marketing_cloud, topics)
    resolvers = _resolvers(app, settings, connections, topics, tables)
    worker = Worker(app, settings, connections, topics, tables, poller, resolvers)
    _ingest(worker)
    for resolver in resolvers.values():
        _resolver(worker, resolver)
    _sinks(worker)
    _acker(worker)
    if settings.poll_click_log:
        for unit in settings.business_units:
            _poll(worker, unit.tenant)
    bridge = Bridge(topics)
    if settings.kinesis_stream and tables.kinesis_checkpoints is not None:
        _kinesis(worker, ShardReader(settings, connections.aws, bridge, tables.kinesis_checkpoints))
    if settings.sqs_queue_url or settings.sqs_queue_name:
        ingress = SqsIngress(settings, connections.aws, bridge)

        @app.task
        async def sqs_source() -> None:
            await asyncio.gather(*(ingress.poll_forever() for _ in range(settings.sqs_pollers)))

    @app.task
    async def declare_outputs() -> None:
        """Create the topics that no agent of ours consumes (faust declares the others)."""
        await topics.dead_letter.maybe_declare()

    return worker


def _ingest(worker: Worker) -> None:
    settings, seen_rows = worker.settings, worker.tables.seen_rows
    ingester = Ingest(seen_rows, KafkaIngestOutputs(worker.topics), lambda tenant: settings.unit(tenant).skip_job_ids,
                      settings.reack_after_seconds)

    @worker.app.agent(worker.topics.click_rows, name="ingest")
    async def ingest(stream: Any) -> None:
        # one record at a time: the seen-rows table is written on the record's own partition
        await each_event(stream, lambda record: ingester.handle(record, time.time()))

    @worker.app.timer(max(60.0, min(3600.0, seen_rows.ttl / 10)), name="seen-rows-expiry")
    async def expire_seen_rows() -> None:
        seen_rows.expire(time.time())


def _resolvers(app: faust.App, settings: Settings, connections: Connections, topics: Topics,
               tables: Tables) -> dict[EntityType, Resolver]:
    outputs = KafkaResolverOutputs(app, topics)
    limits = ResolverSettings(settings.in_batch_size, settings.refresh_seconds, settings.entity_fetch_attempts)

    def args(kind: EntityType) -> tuple[Any, ...]:
        return (kind, tables.entities[kind], tables.retries[kind], topics.request_partitions(kind),
                connections.marketing_cloud, outputs, limits)

    return {"send": SendResolver(*args("send"), acks=tables.send_acks), "subscriber": Resolver(*args("subscriber")),
            "email": EmailResolver(*args("email")), "category": CategoryResolver(*args("category"))}


def fetch_window(settings: Settings, kind: EntityType) -> float:
    """Seconds the ``kind`` resolver gathers requests at most: ``fetch_window`` for the kinds clicks name,
    ``chained_fetch_window`` for the kinds fetched entities name."""
    return settings.fetch_window if kind in CLICKED_KINDS else settings.chained_fetch_window


def _resolver(worker: Worker, resolver: Resolver) -> None:
    """The agent that feeds ``resolver`` its request topic by windows, and the timer that requeues its due
    retries every second (over the topic's partitions this worker consumes)."""
    app, topic = worker.app, worker.topics.requests[resolver.kind]

    window = fetch_window(worker.settings, resolver.kind)

    async def resolve(stream: Any) -> None:
        await each_batch(stream, REQUESTS_PER_WINDOW, window, resolver.resolve)

    async def requeue_due() -> None:
        name = topic.get_topic_name()
        await resolver.requeue_due({tp.partition for tp in app.assignor.assigned_actives() if tp.topic == name})

    app.timer(1.0, name=f"requeue-{resolver.kind}")(requeue_due)
    resolve.__name__ = resolve.__qualname__ = f"{resolver.kind}_resolver"
    app.agent(topic, name=f"resolve-{resolver.kind}")(resolve)


def _sinks(worker: Worker) -> None:
    app, settings, connections, topics = worker.app, worker.settings, worker.connections, worker.topics

    @app.agent(topics.click_events, name="clicks-sink")
    async def clicks_sink(stream: Any) -> None:
        db = connections.mongo()
        await check_adopted(db, settings.legacy_tenant)
        await ensure_indexes(db)
        sink = ClicksSink(db, connections.document_ids(), KafkaClickOutputs(topics))
        marker = settings.test_fail_once
        await each_batch(stream, settings.sink_batch, settings.sink_within,
                         sink.write if marker is None else failing_once(sink, marker))

    @app.agent(topics.entity_changes, name="models-sink")
    async def models_sink(stream: Any) -> None:
        db = connections.mongo()
        await check_adopted(db, settings.legacy_tenant)
        sink = ModelsSink(db, worker.tables.send_links, connections.document_ids(), KafkaModelOutputs(topics))
        await each_batch(stream, settings.sink_batch, settings.sink_within, sink.write)


def _acker(worker: Worker) -> None:
    """Marks acknowledged rows processed in SFMC, or hands them to the SQS acks queue when
    ``LEADS_SQS_ACKS_QUEUE`` is set (``leads-sync mark-from-queue`` then marks them); a failed batch is read
    again."""
    settings, connections = worker.settings, worker.connections
    outputs = KafkaMarkingOutputs(worker.topics)

    @worker.app.agent(worker.topics.acks, name="acker")
    async def acker(stream: Any) -> None:
        mark: Callable[[list[AckBatch]], Awaitable[None]]
        if settings.sqs_acks_queue:
            queue = AckQueue(settings, connections.aws)
            mark = lambda batch: queue.publish(batch, outputs)  # noqa: E731
        else:
            mark = Marking(connections.marketing_cloud, connections.mongo(), outputs).mark
        await each_batch(stream, ACK_RECORDS_PER_BATCH, settings.sink_within, mark)


def _poll(worker: Worker, tenant: str) -> None:
    # a one-second timer that polls when due: the first poll comes as soon as a leader is known,
    # not a whole interval after start (a faust timer first sleeps its interval)
    poller = worker.poller

    async def poll_when_due() -> None:
        if poller.due(tenant, time.time()):
            await poller.poll(tenant)

    worker.app.timer(1.0, on_leader=True, name=f"poll-{tenant}")(poll_when_due)


def _kinesis(worker: Worker, reader: ShardReader) -> None:
    app = worker.app

    @app.timer(worker.settings.kinesis_poll_interval, name="kinesis-source")
    async def read_kinesis() -> None:
        if not app.is_leader() or app.rebalancing or app.in_recovery:
            reader.reset()  # another worker reads (or will, after the rebalance): forget our iterators
            return
        await reader.tick_logged()
