"""Operator commands: ``leads-sync summary`` counts what the pipeline has read, written and acked."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import click
import orjson
from faust.cli import option

from streams.adoption import Adopted
from streams.app import app, settings
from streams.kafka import read_topic
from streams.models import ClickEvents, DeadLetterStage
from streams.resources import mongo
from streams.topics import acks, click_events, click_rows, dead_letter

COLLECTIONS = ("identities", "email-categories", "email-deployments", "email-sends", "email-send-urls",
               "event-email-clicks", "processed-events")


async def pipeline_summary() -> dict[str, Any]:
    rows = await read_topic(click_rows.get_topic_name())
    events = await read_topic(click_events.get_topic_name())
    ack_batches = await read_topic(acks.get_topic_name())
    letters = await read_topic(dead_letter.get_topic_name())
    acked: Counter[str] = Counter()
    for batch in ack_batches:
        acked[batch["status"]] += len(batch["rows"])
    db = mongo()
    return {
        "rows read": sum(len(batch["rows"]) for batch in rows),
        "click events": sum(1 for batch in events for _ in ClickEvents.from_data(batch).clicks()),
        "acks": dict(acked),
        "dead letters": dict(Counter(letter["stage"] for letter in letters)),
        "documents": {name: await db[name].count_documents({}) for name in COLLECTIONS},
    }


@app.command()
async def summary(self: Any) -> None:
    """Print rows read, events, acks, dead letters and documents per collection (JSON)."""
    print(orjson.dumps(await pipeline_summary(), option=orjson.OPT_INDENT_2).decode())


def _print_progress(topic: str, done: int, total: int, elapsed: float) -> None:
    rate = done / elapsed if elapsed > 0 else 0.0
    eta = (total - done) / rate if rate else 0.0
    print(f"{topic}: {done}/{total} records, {rate:,.0f}/s, ETA {eta:,.0f}s", flush=True)


@app.command(
    option("--since", type=click.DateTime(), default=None,
           help="Replay records from this time (UTC) instead of from the beginning."),
    option("--database", default=None, help="Write into this database instead of the configured one."),
    option("--batch", type=int, default=500, show_default=True, help="Records per bulk write."),
)
async def replay(self: Any, since: datetime | None, database: str | None, batch: int) -> None:
    """Rebuild the MongoDB models from entity-changes and click-events, without calling SFMC."""
    from streams.replay import replay as run_replay

    if database:
        settings.mongo_database = database
    if since is not None:
        since = since.replace(tzinfo=UTC)
    counts = await run_replay(since=since, batch=batch, progress=_print_progress)
    print(orjson.dumps({"replayed": counts, "database": settings.mongo_database}).decode())


@app.command(
    option("--stage", type=click.Choice([stage.value for stage in DeadLetterStage]), default=None,
           help="Only dead letters of this stage (default: every stage)."),
)
async def replay_dead_letters(self: Any, stage: str | None) -> None:
    """Send dead letters back into the pipeline (after a fix), each once: rows to click-rows, entities to their
    resolvers, acks to the acker. Prints what was requeued and what was skipped, per stage, with reasons (JSON).
    A letter that cannot be requeued yet (its tenant not configured, say) stays due: later runs try it again."""
    from streams.replay import requeue_dead_letters

    report = await requeue_dead_letters([DeadLetterStage(stage)] if stage else tuple(DeadLetterStage))
    print(orjson.dumps(report).decode())


def _print_adoption(collection: str, count: Adopted, elapsed: float) -> None:
    rate = count.adopted / elapsed if elapsed > 0 else 0.0
    print(f"{collection}: {count.adopted} adopted, {count.skipped} skipped, {rate:,.0f}/s", flush=True)


@app.command(
    option("--batch", type=int, default=1000, show_default=True, help="Documents per bulk write."),
)
async def adopt(self: Any, batch: int) -> None:
    """Give the previous system's model documents the entity of LEADS_LEGACY_TENANT (once, before any worker;
    idempotent and resumable)."""
    from streams.adoption import adopt as run_adoption
    from streams.mongo import ensure_indexes

    if not settings.legacy_tenant:
        raise click.UsageError("set LEADS_LEGACY_TENANT to the tenant of the BU that owns the existing documents")
    db = mongo()
    await ensure_indexes(db)
    counts = await run_adoption(db, settings.legacy_tenant, batch=batch, progress=_print_adoption)
    print(orjson.dumps({"adopted": {name: vars(count) for name, count in counts.items()},
                        "tenant": settings.legacy_tenant, "database": settings.mongo_database}).decode())
