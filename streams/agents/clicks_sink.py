"""Clicks sink: batches of click events become ``event-email-clicks`` upserts, then processed acks."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Sequence

from streams.adoption import check_adopted
from streams.app import app, settings
from streams.batches import each_batch
from streams.clicks import click_updates
from streams.models import ClickEvent, ClickEvents, DeadLetterStage
from streams.mongo import bulk_upsert, ensure_indexes
from streams.references import DocumentIds
from streams.resources import document_ids, mongo
from streams.tables.seen_rows import UNWRITTEN_SOURCE
from streams.topics import append_click_rows, click_events, send_acks, send_dead_letter

CLICKS = "event-email-clicks"


async def store_clicks(batch: Sequence[ClickEvents], document_ids: DocumentIds) -> list[tuple[str, ClickEvent]]:
    """Upsert the batch's ``event-email-clicks`` documents (also used by replay, which sends no acks);
    ``job`` and ``usr`` are the ``_id``s ``document_ids`` resolves. Returns the clicks written, as
    ``(tenant, click)``; the clicks of a document MongoDB refuses are dead-lettered (stage ``write-clicks``),
    and a document refused in the guids bulk gets no bots update."""
    clicks = [(record.tenant, send, event) for record in batch for send, event in record.clicks()]
    ids = await document_ids.resolve(key for _, send, event in clicks for key in (send, event.subscriber))
    updates = click_updates(((send, event) for _, send, event in clicks), ids)
    refused = await bulk_upsert(CLICKS, [update.guids for update in updates])
    with_bots = [update for index, update in enumerate(updates) if update.bots and index not in refused]
    refused_bots = await bulk_upsert(CLICKS, [update.bots for update in with_bots if update.bots])
    reasons: dict[int, str] = {}  # position in ``clicks`` → why MongoDB refused its document
    for refused_updates, refusals in ((updates, refused), (with_bots, refused_bots)):
        for index, reason in refusals.items():
            reasons.update(dict.fromkeys(refused_updates[index].clicks, reason))
    if reasons:
        await _set_aside([clicks[position] for position in reasons], list(reasons.values()))
    return [(tenant, event) for position, (tenant, _, event) in enumerate(clicks) if position not in reasons]


async def _set_aside(clicks: list[tuple[str, str, ClickEvent]], reasons: list[str]) -> None:
    """Dead-letter each click whose document MongoDB refused (stage ``write-clicks``) and tell ingest to drop
    its row's later readings instead of acking them as repeats (``click-rows`` source ``unwritten``)."""
    pending = [await send_dead_letter(f"{tenant}:{event.row_id}", DeadLetterStage.WRITE_CLICKS,
                                      f"MongoDB refused the click's document: {reason}", tenant,
                                      {"send": send, "event": event._asdict()})
               for (tenant, send, event), reason in zip(clicks, reasons, strict=True)]
    for tenant in {tenant for tenant, _, _ in clicks}:
        pending += await append_click_rows(tenant, [event.keys for t, _, event in clicks if t == tenant],
                                           read_at=time.time(), source=UNWRITTEN_SOURCE)
    await asyncio.gather(*pending)


@app.agent(click_events)
async def clicks_sink(stream):
    await check_adopted(mongo(), settings.legacy_tenant)
    await ensure_indexes()
    await each_batch(stream, settings.sink_batch, settings.sink_within, write_clicks)


async def write_clicks(batch: Sequence[ClickEvents]) -> None:
    """Write the batch's clicks, and only once MongoDB has them, ack their rows (and the repeats) as processed;
    the rows of a click MongoDB refused are dead-lettered, not acked."""
    rows: dict[str, list[dict[str, str]]] = defaultdict(list)
    for tenant, event in await store_clicks(batch, document_ids()):
        rows[tenant].append(event.keys)
    for clicks in batch:
        rows[clicks.tenant].extend(clicks.repeats or ())
    for tenant, tenant_rows in rows.items():
        await send_acks(tenant, "processed", tenant_rows)
