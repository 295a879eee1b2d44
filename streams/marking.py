"""Marking rows processed in SFMC: 50 rows a rowset request, and never dropping one.

A row SFMC refuses with errorcode 10006 (its keys match no primary key) is recorded in the
``processed-events`` collection instead, and so counts as processed (SPEC 2); it stays Ready in SFMC, so
ingest is told (``note_refused``) to drop its later readings instead of acking it again. One that MongoDB
refuses to record there is not processed: it is dead-lettered (stage ``ack``, with MongoDB's reason), as a
row SFMC refused with another code, and ingest is not told. Transient SFMC failures are retried with backoff
until SFMC answers. Used by the acker agent and by ``leads-sync mark-from-queue`` (the SQS ack egress).
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Mapping

from faust.types import RecordMetadata

from streams import metrics
from streams.clicks import KEY_FIELDS
from streams.documents import processed_event_update
from streams.edges import chunks
from streams.marketing_cloud import AuthError, MarketingCloudError, RowFailure, TransientError
from streams.marketing_cloud.rest import KEY_MISMATCH
from streams.models import AckBatch, DeadLetterStage
from streams.mongo import bulk_upsert
from streams.resources import marketing_cloud
from streams.retry import until_done
from streams.tables.seen_rows import REFUSED_SOURCE
from streams.topics import append_click_rows, send_dead_letter

ROWSET_ROWS = 50
PROCESSED_EVENTS = "processed-events"


def primary_key(keys: Mapping[str, str]) -> tuple[str, ...]:
    """A row's identity: its values of the DE's primary key (``KEY_FIELDS``, in that order). Rows may share
    an ``ID`` and differ in the other key fields; each is a row of its own, with a mark of its own."""
    return tuple(keys.get(name, "") for name in KEY_FIELDS)


async def mark_in_sfmc(batch: list[AckBatch]) -> None:
    rows: dict[str, dict[tuple[str, ...], dict[str, str]]] = defaultdict(dict)
    for ack in batch:
        for keys in ack.rows:
            rows[ack.tenant][primary_key(keys)] = keys  # the same row acked twice is marked once
    await asyncio.gather(*(_mark_tenant(tenant, list(by_key.values())) for tenant, by_key in rows.items()))


async def _mark_tenant(tenant: str, rows: list[dict[str, str]]) -> None:
    results = await asyncio.gather(*(_mark_until_done(tenant, list(chunk)) for chunk in chunks(rows, ROWSET_ROWS)))
    failures = [failure for result in results for failure in result]
    refused = [failure.keys for failure in failures if failure.code == KEY_MISMATCH]
    metrics.rows_marked.inc(len(rows) - len(failures), tenant=tenant)
    now = time.time()
    unrecorded = await bulk_upsert(PROCESSED_EVENTS, [processed_event_update(keys["ID"], now) for keys in refused])
    recorded = [keys for index, keys in enumerate(refused) if index not in unrecorded]
    metrics.key_mismatch_fallbacks.inc(len(recorded), tenant=tenant)
    await note_refused(tenant, recorded, now)
    letters = [(failure.keys, f"SFMC refused to mark the row ({failure.code}): {failure.message}")
               for failure in failures if failure.code != KEY_MISMATCH]
    letters += [(refused[index], f"SFMC refused to mark the row ({KEY_MISMATCH}) and MongoDB refused to record it "
                                 f"in {PROCESSED_EVENTS}: {reason}") for index, reason in unrecorded.items()]
    await asyncio.gather(*[await dead_letter_ack(tenant, keys, reason) for keys, reason in letters])


async def note_refused(tenant: str, rows: list[dict[str, str]], at: float) -> None:
    """Tell ingest that SFMC refused these rows (their keys) and they are recorded as processed: one
    ``click-rows`` record of source ``refused`` per partition, where the rows' readings go, whose seen-rows
    table then drops their later readings (``Outcome.REFUSED``) instead of acking them again."""
    await append_click_rows(tenant, rows, read_at=at, source=REFUSED_SOURCE)


async def dead_letter_ack(tenant: str, keys: dict[str, str], reason: str) -> Awaitable[RecordMetadata]:
    """Dead-letter a row that could not be marked (stage ``ack``, source ``{"keys": its key values}``);
    await the result to know Kafka has it."""
    return await send_dead_letter(f"{tenant}:{keys.get('ID', '')}", DeadLetterStage.ACK, reason, tenant,
                                  {"keys": keys})


async def _mark_until_done(tenant: str, rows: list[dict[str, str]]) -> list[RowFailure]:
    def marking() -> Awaitable[list[RowFailure]]:
        return metrics.sfmc_calls.time(marketing_cloud(tenant).mark_processed(rows), call="rowset", tenant=tenant)

    try:
        return await until_done(f"marking {len(rows)} rows of {tenant}", marking,
                                transient=lambda exc: isinstance(exc, TransientError | AuthError))
    except MarketingCloudError as exc:  # SFMC refused the request itself: dead-letter its rows
        code = getattr(exc, "errorcode", None) or 0
        return [RowFailure(keys, code, str(exc)) for keys in rows]
