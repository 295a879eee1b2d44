"""Operator commands on a built app (``register_commands``): ``summary``, ``replay``, ``replay-dead-letters``,
``adopt``, ``status`` and ``mark-from-queue``. Each takes its settings, connections and topics from the ``Worker`` that
``streams.topology.wire`` built on the same app."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import aiohttp
import click
import orjson
from faust.cli import option

from streams import adoption
from streams import replay as replaying
from streams.connections import Connections
from streams.edges.bridge import Bridge
from streams.edges.sqs_egress import AckQueue
from streams.kafka_clients import read_topic
from streams.marking import Marking
from streams.mongo import ensure_indexes
from streams.outputs import KafkaMarkingOutputs
from streams.topic_records import ClickEvents, DeadLetterStage
from streams.topology import Worker
from streams.web import terminal

COLLECTIONS = ("identities", "email-categories", "email-deployments", "email-sends", "email-send-urls",
               "event-email-clicks", "processed-events")


async def pipeline_summary(worker: Worker) -> dict[str, Any]:
    """``{"rows read", "click events", "acks": {status: rows}, "dead letters": {stage: letters},
    "documents": {collection: count}}``, read from the topics and the database."""
    settings, topics = worker.settings, worker.topics
    rows = await read_topic(settings, topics.click_rows.get_topic_name())
    events = await read_topic(settings, topics.click_events.get_topic_name())
    ack_batches = await read_topic(settings, topics.acks.get_topic_name())
    letters = await read_topic(settings, topics.dead_letter.get_topic_name())
    acked: Counter[str] = Counter()
    for batch in ack_batches:
        acked[batch["status"]] += len(batch["rows"])
    db = worker.connections.mongo()
    return {
        "rows read": sum(len(batch["rows"]) for batch in rows),
        "click events": sum(1 for batch in events for _ in ClickEvents.from_data(batch).clicks()),
        "acks": dict(acked),
        "dead letters": dict(Counter(letter["stage"] for letter in letters)),
        "documents": {name: await db[name].count_documents({}) for name in COLLECTIONS},
    }


def _print_progress(topic: str, done: int, total: int, elapsed: float) -> None:
    rate = done / elapsed if elapsed > 0 else 0.0
    eta = (total - done) / rate if rate else 0.0
    print(f"{topic}: {done}/{total} records, {rate:,.0f}/s, ETA {eta:,.0f}s", flush=True)


def _print_adoption(collection: str, count: adoption.Adopted, elapsed: float) -> None:
    rate = count.adopted / elapsed if elapsed > 0 else 0.0
    print(f"{collection}: {count.adopted} adopted, {count.skipped} skipped, {rate:,.0f}/s", flush=True)


def register_commands(worker: Worker) -> None:
    """Add the operator commands to ``worker.app``'s command line (``leads-sync --help`` lists them)."""
    app, settings, connections, topics = worker.app, worker.settings, worker.connections, worker.topics

    @app.command()
    async def summary(self: Any) -> None:
        """Print rows read, events, acks, dead letters and documents per collection (JSON)."""
        print(orjson.dumps(await pipeline_summary(worker), option=orjson.OPT_INDENT_2).decode())

    @app.command(
        option("--since", type=click.DateTime(), default=None,
               help="Replay records from this time (UTC) instead of from the beginning."),
        option("--database", default=None, help="Write into this database instead of the configured one."),
        option("--batch", type=int, default=500, show_default=True, help="Records per bulk write."),
    )
    async def replay(self: Any, since: datetime | None, database: str | None, batch: int) -> None:
        """Rebuild the MongoDB models from entity-changes and click-events, without calling SFMC."""
        target = settings.model_copy(update={"mongo_database": database}) if database else settings
        into = Connections(target) if database else connections
        try:
            counts = await replaying.replay(target, into, topics, since=since and since.replace(tzinfo=UTC),
                                            batch=batch, progress=_print_progress)
        finally:
            if into is not connections:
                await into.aclose()
        print(orjson.dumps({"replayed": counts, "database": target.mongo_database}).decode())

    @app.command(
        option("--stage", type=click.Choice([stage.value for stage in DeadLetterStage]), default=None,
               help="Only dead letters of this stage (default: every stage)."),
    )
    async def replay_dead_letters(self: Any, stage: str | None) -> None:
        """Send dead letters back into the pipeline (after a fix), each once: rows to click-rows, entities to their
        resolvers, acks to the acker. Prints what was requeued and what was skipped, per stage, with reasons
        (JSON). A letter that cannot be requeued yet (its tenant not configured, say) stays due: later runs try it
        again."""
        report = await replaying.requeue_dead_letters(settings, topics,
                                                      [DeadLetterStage(stage)] if stage else tuple(DeadLetterStage))
        print(orjson.dumps(report).decode())

    @app.command(
        option("--batch", type=int, default=1000, show_default=True, help="Documents per bulk write."),
    )
    async def adopt(self: Any, batch: int) -> None:
        """Give the previous system's model documents the entity of LEADS_LEGACY_TENANT (once, before any worker;
        idempotent and resumable)."""
        if not settings.legacy_tenant:
            raise click.UsageError("set LEADS_LEGACY_TENANT to the tenant of the BU that owns the existing documents")
        db = connections.mongo()
        await ensure_indexes(db)
        counts = await adoption.adopt(db, settings.legacy_tenant, batch=batch, progress=_print_adoption)
        print(orjson.dumps({"adopted": {name: vars(count) for name, count in counts.items()},
                            "tenant": settings.legacy_tenant, "database": settings.mongo_database}).decode())

    @app.command(
        option("--url", default=None,
               help="The worker's web address (default: this machine's worker, LEADS_WEB_HOST and LEADS_WEB_PORT)."),
        option("--json", "as_json", is_flag=True, default=False, help="Print one JSON document instead of tables."),
    )
    async def status(self: Any, url: str | None, as_json: bool) -> None:
        """Show a worker's status: business units, rates, topics and the dead letters grouped by stage and reason,
        with the command that requeues them. The token is LEADS_WEB_TOKEN's, when set."""
        host = "127.0.0.1" if settings.web_host in ("0.0.0.0", "::", "") else settings.web_host
        token = settings.web_token.get_secret_value() if settings.web_token else None
        try:
            replies = await terminal.fetch(url or f"http://{host}:{settings.web_port}", token)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise click.ClickException(f"the worker did not answer: {exc}") from None
        print(orjson.dumps(replies, option=orjson.OPT_INDENT_2).decode() if as_json else terminal.render(replies))

    @app.command(
        option("--until-empty", is_flag=True, default=False, help="Stop when a receive finds the queue empty."),
    )
    async def mark_from_queue(self: Any, until_empty: bool) -> None:
        """Mark the rows on the acks queue (LEADS_SQS_ACKS_QUEUE) processed in SFMC."""
        if not settings.sqs_acks_queue:
            raise SystemExit("LEADS_SQS_ACKS_QUEUE is not set")
        marked = 0
        queue = AckQueue(settings, connections.aws)
        marking = Marking(connections.marketing_cloud, connections.mongo(), KafkaMarkingOutputs(topics))
        bridge = Bridge(topics)
        try:
            sqs, url = await queue.url()
            while True:
                received = await queue.receive(sqs, url)
                if received:
                    marked += await queue.mark_received(sqs, url, received, marking, bridge)
                elif until_empty:
                    break
        finally:
            await connections.aclose()
            await app.producer.stop()
        print(f"marked {marked} rows")
