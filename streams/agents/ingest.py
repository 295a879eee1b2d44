"""Ingest: click rows become click events; skipped rows become skipped acks; bad rows dead letters."""

from __future__ import annotations

import time
from collections import defaultdict

from streams import metrics
from streams.app import app, settings
from streams.clicks import RowRejected, parse_row, row_keys
from streams.entities import entity
from streams.models import DEAD_LETTER_SOURCE, AckBatch, ClickEvent, ClickEvents, ClickRows, DeadLetter
from streams.tables.entities import request
from streams.tables.seen_rows import mark_seen, seen
from streams.topics import acks, click_events, click_rows, dead_letter, send_requests, subscriber_requests


@app.agent(click_rows)
async def ingest(stream):  # type: ignore[no-untyped-def]
    # one record at a time: the seen-rows table is written on the record's own partition
    async for batch in stream:
        await ingest_rows(batch)


async def ingest_rows(batch: ClickRows) -> None:
    tenant = batch.tenant
    skip_job_ids = settings.unit(tenant).skip_job_ids
    requeued = batch.source == DEAD_LETTER_SOURCE
    events: dict[str, list[ClickEvent]] = defaultdict(list)
    skipped: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in batch.rows:
        row_id = (row.get("ID") or "").strip()
        if row_id:
            key = f"{tenant}:{row_id}"
            if seen(key) and not requeued:
                continue
            mark_seen(key)
        try:
            event = parse_row(tenant, row, skip_job_ids)
        except RowRejected as exc:
            if exc.skip:
                skipped[exc.reason].append(row_keys(row))
            if exc.bad:
                metrics.dead_letters.inc(stage="ingest")
                await dead_letter.send(key=f"{tenant}:{row_id}", value=DeadLetter(
                    stage="ingest", reason=exc.reason, tenant=tenant, source=dict(row), at=time.time()))
            continue
        events[(row.get("JobID") or "").strip()].append(event)
    for reason, rows in skipped.items():
        metrics.rows_skipped.inc(len(rows), tenant=tenant)
        metrics.acks_emitted.inc(len(rows), status="skipped")
        await acks.send(key=tenant, value=AckBatch(tenant=tenant, status="skipped", rows=rows, reason=reason))
    for job_id, job_events in events.items():
        metrics.events_ingested.inc(len(job_events), tenant=tenant)
        send = entity(tenant, "send", job_id)
        await click_events.send(key=send, value=ClickEvents(tenant=tenant, send=send, events=job_events))
        await request(send_requests, tenant, "send", [job_id],
                      acks={job_id: sorted({event.ack for event in job_events})})
        await request(subscriber_requests, tenant, "subscriber",
                      {event.subscriber.rpartition("*")[2] for event in job_events})
