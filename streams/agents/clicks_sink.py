"""Clicks sink: batches of click events become ``event-email-clicks`` upserts, then processed acks."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from streams.adoption import check_adopted
from streams.app import app, settings
from streams.batches import each_batch
from streams.clicks import click_updates
from streams.models import ClickEvents
from streams.mongo import bulk_upsert, ensure_indexes
from streams.references import DocumentIds
from streams.resources import document_ids, mongo
from streams.topics import click_events, send_acks

CLICKS = "event-email-clicks"


async def store_clicks(batch: Sequence[ClickEvents], document_ids: DocumentIds) -> None:
    """Upsert the batch's ``event-email-clicks`` documents (also used by replay, which sends no acks);
    ``job`` and ``usr`` are the ``_id``s ``document_ids`` resolves."""
    ids = await document_ids.resolve(key for clicks in batch
                                     for key in (clicks.send, *(event.subscriber for event in clicks.events)))
    guid_ops, bot_ops = click_updates(((clicks.send, event) for clicks in batch for event in clicks.events), ids)
    await bulk_upsert(CLICKS, guid_ops)
    await bulk_upsert(CLICKS, bot_ops)


@app.agent(click_events)
async def clicks_sink(stream):
    await check_adopted(mongo(), settings.legacy_tenant)
    await ensure_indexes()
    await each_batch(stream, settings.sink_batch, settings.sink_within, write_clicks)


async def write_clicks(batch: Sequence[ClickEvents]) -> None:
    """Write the batch's clicks, and only once MongoDB has them, ack their rows as processed."""
    await store_clicks(batch, document_ids())
    rows: dict[str, list[dict[str, str]]] = defaultdict(list)
    for clicks in batch:
        rows[clicks.tenant].extend(event.keys for event in clicks.events)
        rows[clicks.tenant].extend(clicks.repeats or ())
    for tenant, tenant_rows in rows.items():
        await send_acks(tenant, "processed", tenant_rows)
