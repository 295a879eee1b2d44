"""Ingest: click rows become click events; skipped rows become skipped acks; bad rows dead letters."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable

from faust.types import RecordMetadata

from streams import metrics
from streams.app import app, settings
from streams.clicks import RowRejected, parse_row, row_keys
from streams.entities import entity
from streams.models import DEAD_LETTER_SOURCE, ClickEvent, ClickRows, DeadLetterStage
from streams.tables.entities import request
from streams.tables.seen_rows import SETTLED, Outcome, row_key, seen_rows
from streams.topics import (
    click_rows,
    send_acks,
    send_click_events,
    send_dead_letter,
    send_requests,
    subscriber_requests,
)


@app.agent(click_rows)
async def ingest(stream):
    # one record at a time: the seen-rows table is written on the record's own partition
    async for batch in stream:
        await ingest_rows(batch)


async def ingest_rows(batch: ClickRows) -> None:
    tenant = batch.tenant
    now = time.time()
    if (settled := SETTLED.get(batch.source)) is not None:  # rows to remember as refused or unwritten
        seen_rows.record({row_key(tenant, row): settled for row in batch.rows}, now)
        return
    skip_job_ids = settings.unit(tenant).skip_job_ids
    requeued = batch.source == DEAD_LETTER_SOURCE  # their first reading produced no event
    events: dict[str, list[ClickEvent]] = defaultdict(list)  # by send entity
    skipped: dict[str, list[dict[str, str]]] = defaultdict(list)
    handled: dict[str, Outcome] = {}
    pending: list[Awaitable[RecordMetadata]] = []  # what Kafka must have before the rows count as handled
    refused = 0
    for row in batch.rows:
        key = row_key(tenant, row)
        if key in handled:  # the same row twice in one record
            continue
        previous = None if requeued else seen_rows.lookup(key, now)
        if previous is not None:
            outcome, handled_at = previous
            if outcome is Outcome.REFUSED:
                refused += 1
                continue
            if outcome is Outcome.BAD or now - handled_at < settings.reack_after_seconds:
                continue
            if outcome is Outcome.SKIPPED:
                handled[key] = outcome
                skipped["a skipped row read again"].append(row_keys(row))
                continue
            # a click read again long after: it is written again (idempotently) and acked after that write,
            # so its ack never rests on an earlier write that may not have happened
        try:
            event = parse_row(tenant, row, skip_job_ids)
        except RowRejected as exc:
            handled[key] = Outcome.SKIPPED if exc.skip else Outcome.BAD
            if exc.skip:
                skipped[exc.reason].append(row_keys(row))
            if exc.bad:
                pending.append(await send_dead_letter(f"{tenant}:{row.get('ID', '')}", DeadLetterStage.INGEST,
                                                      exc.reason, tenant, dict(row)))
            continue
        handled[key] = Outcome.EVENT
        events[entity(tenant, "send", row["JobID"].strip())].append(event)
    metrics.refused_rows_dropped.inc(refused, tenant=tenant)
    for reason, rows in skipped.items():
        metrics.rows_skipped.inc(len(rows), tenant=tenant)
        pending += await send_acks(tenant, "skipped", rows, reason)
    if events:
        pending += await send_click_events(tenant, events)
        metrics.events_ingested.inc(sum(map(len, events.values())), tenant=tenant)
        pending += await request(send_requests, tenant, "send", [send.rpartition("*")[2] for send in events], acks={
            send.rpartition("*")[2]: sorted({event.ack for event in send_events})
            for send, send_events in events.items()})
        pending += await request(subscriber_requests, tenant, "subscriber", {
            event.subscriber.rpartition("*")[2] for send_events in events.values() for event in send_events})
    # only once Kafka has the rows' events, acks and dead letters do they count as handled: a worker that dies
    # before then leaves no seen-rows entry, so the record, read again, is handled again from the start
    await asyncio.gather(*pending)
    seen_rows.record(handled, now)
