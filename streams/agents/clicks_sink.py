"""Clicks sink: batches of click events become ``event-email-clicks`` upserts, then processed acks."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from streams.adoption import check_adopted
from streams.app import app, settings
from streams.batches import each_batch
from streams.clicks import click_updates
from streams.models import ClickEvent, ClickEvents, DeadLetterStage
from streams.mongo import bulk_upsert, ensure_indexes
from streams.references import DocumentIds
from streams.resources import document_ids, mongo
from streams.tables.seen_rows import UNWRITTEN_SOURCE
from streams.topics import Pending, append_click_rows, click_events, send_acks, send_dead_letter

CLICKS = "event-email-clicks"
log = logging.getLogger(__name__)


Refused = tuple[str, str, ClickEvent, str]
"""A click whose document MongoDB refused: ``(tenant, send entity, click, reason)``."""


async def store_clicks(batch: Sequence[ClickEvents],
                       document_ids: DocumentIds) -> tuple[list[tuple[str, ClickEvent]], list[Refused]]:
    """Upsert the batch's ``event-email-clicks`` documents (also used by replay, which sends no acks);
    ``job`` and ``usr`` are the ``_id``s ``document_ids`` resolves. Returns the clicks written, as
    ``(tenant, click)``, and those of the documents MongoDB refused (a document refused in the guids bulk
    gets no bots update)."""
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
    written = [(tenant, event) for position, (tenant, _, event) in enumerate(clicks) if position not in reasons]
    return written, [(*clicks[position], reason) for position, reason in reasons.items()]


async def dead_letter_clicks(refused: Sequence[Refused]) -> Pending:
    """Dead-letter each refused click (stage ``write-clicks``); await the results to know Kafka has them."""
    return [await send_dead_letter(f"{tenant}:{event.row_id}", DeadLetterStage.WRITE_CLICKS,
                                   f"MongoDB refused the click's document: {reason}", tenant,
                                   {"send": send, "event": event._asdict()})
            for tenant, send, event, reason in refused]


async def _set_aside(refused: Sequence[Refused]) -> None:
    """Dead-letter the refused clicks and tell ingest to drop their rows' later readings instead of acking
    them as repeats (``click-rows`` source ``unwritten``)."""
    log.warning("MongoDB refused %d click(s), dead-lettered (stage write-clicks), e.g. %s", len(refused),
                refused[0][3])
    pending = await dead_letter_clicks(refused)
    for tenant in {tenant for tenant, *_ in refused}:
        pending += await append_click_rows(tenant, [event.keys for t, _, event, _ in refused if t == tenant],
                                           read_at=time.time(), source=UNWRITTEN_SOURCE)
    await asyncio.gather(*pending)


@app.agent(click_events)
async def clicks_sink(stream):
    await check_adopted(mongo(), settings.legacy_tenant)
    await ensure_indexes()
    marker = settings.test_fail_once
    handle = write_clicks if marker is None else failing_once(marker)
    await each_batch(stream, settings.sink_batch, settings.sink_within, handle)


async def write_clicks(batch: Sequence[ClickEvents]) -> None:
    """Write the batch's clicks, and only once MongoDB has them, ack their rows (and the repeats of records
    written before 2026-12-01) as processed; the rows of a click MongoDB refused are dead-lettered, not acked."""
    written, refused = await store_clicks(batch, document_ids())
    if refused:
        await _set_aside(refused)
    rows: dict[str, list[dict[str, str]]] = defaultdict(list)
    for tenant, event in written:
        rows[tenant].append(event.keys)
    for clicks in batch:
        rows[clicks.tenant].extend(clicks.repeats or ())
    for tenant, tenant_rows in rows.items():
        await send_acks(tenant, "processed", tenant_rows)


def failing_once(marker: Path) -> Callable[[Sequence[ClickEvents]], Awaitable[None]]:
    """Test-only (``LEADS_TEST_FAIL_ONCE``): ``write_clicks``, except that while the file ``marker`` does not
    exist, the clicks of the first half of a batch are written, then ``marker`` is created and the handler
    raises before any row is acked, as a sink failing part-way through its writes does: the worker exits, and
    the next one, finding the marker, reads the batch again and writes as usual."""

    async def write_half_then_fail(batch: Sequence[ClickEvents]) -> None:
        if marker.exists():
            return await write_clicks(batch)
        await store_clicks(batch[:len(batch) // 2], document_ids())
        marker.touch()
        raise RuntimeError(f"LEADS_TEST_FAIL_ONCE: {len(batch) // 2} of a batch of {len(batch)} records written")

    return write_half_then_fail
