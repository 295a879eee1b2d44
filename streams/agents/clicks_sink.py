"""Clicks sink: batches of click events become ``event-email-clicks`` upserts, then processed acks."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Sequence

from faust.types import RecordMetadata

from streams.adoption import check_adopted
from streams.app import app, settings
from streams.batches import each_batch
from streams.clicks import click_updates
from streams.models import ClickEvent, ClickEvents
from streams.mongo import bulk_upsert, ensure_indexes
from streams.references import DocumentIds
from streams.resources import document_ids, mongo
from streams.topics import click_events, send_acks, send_dead_letter

CLICKS = "event-email-clicks"
WRITE_STAGE = "write-clicks"
"""Dead-letter stage of a click whose document MongoDB refused; source ``{"send": entity, "event": the
``ClickEvent`` as a dict}``."""


async def store_clicks(batch: Sequence[ClickEvents], document_ids: DocumentIds) -> list[tuple[ClickEvents, ClickEvent]]:
    """Upsert the batch's ``event-email-clicks`` documents (also used by replay, which sends no acks);
    ``job`` and ``usr`` are the ``_id``s ``document_ids`` resolves. Returns the clicks written, as
    ``(record, event)``; the clicks of a document MongoDB refuses are dead-lettered (stage ``write-clicks``),
    and a document refused in the guids bulk gets no bots update."""
    clicks = [(record, event) for record in batch for event in record.events]
    ids = await document_ids.resolve(key for record in batch
                                     for key in (record.send, *(event.subscriber for event in record.events)))
    updates = click_updates(((record.send, event) for record, event in clicks), ids)
    refused = await bulk_upsert(CLICKS, [update.guids for update in updates])
    with_bots = [update for index, update in enumerate(updates) if update.bots and index not in refused]
    refused_bots = await bulk_upsert(CLICKS, [update.bots for update in with_bots if update.bots])
    reasons: dict[int, str] = {}  # position in ``clicks`` → why MongoDB refused its document
    for refused_updates, refusals in ((updates, refused), (with_bots, refused_bots)):
        for index, reason in refusals.items():
            reasons.update(dict.fromkeys(refused_updates[index].clicks, reason))
    await asyncio.gather(*[await _dead_letter(*clicks[position], reason) for position, reason in reasons.items()])
    return [click for position, click in enumerate(clicks) if position not in reasons]


async def _dead_letter(record: ClickEvents, event: ClickEvent, reason: str) -> Awaitable[RecordMetadata]:
    return await send_dead_letter(f"{record.tenant}:{event.row_id}", WRITE_STAGE,
                                  f"MongoDB refused the click's document: {reason}", record.tenant,
                                  {"send": record.send, "event": event.asdict()})


@app.agent(click_events)
async def clicks_sink(stream):
    await check_adopted(mongo(), settings.legacy_tenant)
    await ensure_indexes()
    await each_batch(stream, settings.sink_batch, settings.sink_within, write_clicks)


async def write_clicks(batch: Sequence[ClickEvents]) -> None:
    """Write the batch's clicks, and only once MongoDB has them, ack their rows (and the repeats) as processed;
    the rows of a click MongoDB refused are dead-lettered, not acked."""
    rows: dict[str, list[dict[str, str]]] = defaultdict(list)
    for record, event in await store_clicks(batch, document_ids()):
        rows[record.tenant].append(event.keys)
    for clicks in batch:
        rows[clicks.tenant].extend(clicks.repeats or ())
    for tenant, tenant_rows in rows.items():
        await send_acks(tenant, "processed", tenant_rows)
