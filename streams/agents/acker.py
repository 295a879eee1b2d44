"""Acker: marks acknowledged rows processed in SFMC, 50 rows a request, and never drops one.

A row SFMC refuses with errorcode 10006 (its keys match no primary key) is recorded in the
``processed-events`` collection instead. Transient SFMC failures are retried with backoff, holding the
partition until SFMC answers.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable

from streams import metrics
from streams.app import app, settings
from streams.documents import processed_event_update
from streams.edges import chunks
from streams.marketing_cloud import AuthError, MarketingCloudError, RowFailure, TransientError
from streams.marketing_cloud.rest import KEY_MISMATCH
from streams.models import AckBatch
from streams.mongo import bulk_upsert
from streams.resources import marketing_cloud
from streams.retry import until_done
from streams.topics import acks, send_dead_letter

ROWSET_ROWS = 50
PROCESSED_EVENTS = "processed-events"


@app.agent(acks)
async def acker(stream):
    async for batch in stream.take(20, within=1.0):
        await mark(batch)


async def mark(batch: list[AckBatch]) -> None:
    if settings.sqs_acks_queue:  # acks go to SQS; ``leads-sync mark-from-queue`` marks them in SFMC
        from streams.agents.sqs_acks import publish_acks

        await publish_acks(batch)
    else:
        await mark_in_sfmc(batch)


async def mark_in_sfmc(batch: list[AckBatch]) -> None:
    rows: dict[str, dict[tuple[tuple[str, str], ...], dict[str, str]]] = defaultdict(dict)
    for ack in batch:
        for keys in ack.rows:
            rows[ack.tenant][tuple(sorted(keys.items()))] = keys  # the same row acked twice is marked once
    await asyncio.gather(*(_mark_tenant(tenant, list(by_id.values())) for tenant, by_id in rows.items()))


async def _mark_tenant(tenant: str, rows: list[dict[str, str]]) -> None:
    results = await asyncio.gather(*(_mark_until_done(tenant, list(chunk)) for chunk in chunks(rows, ROWSET_ROWS)))
    failures = [failure for result in results for failure in result]
    metrics.rows_marked.inc(len(rows) - len(failures), tenant=tenant)
    metrics.key_mismatch_fallbacks.inc(sum(f.code == KEY_MISMATCH for f in failures), tenant=tenant)
    now = time.time()
    await bulk_upsert(PROCESSED_EVENTS, [processed_event_update(f.keys["ID"], now)
                                         for f in failures if f.code == KEY_MISMATCH])
    for failure in failures:
        if failure.code != KEY_MISMATCH:
            await send_dead_letter(f"{tenant}:{failure.keys.get('ID', '')}", "ack",
                                   f"SFMC refused to mark the row ({failure.code}): {failure.message}",
                                   tenant, {"keys": failure.keys})


async def _mark_until_done(tenant: str, rows: list[dict[str, str]]) -> list[RowFailure]:
    def marking() -> Awaitable[list[RowFailure]]:
        return metrics.sfmc_calls.time(marketing_cloud(tenant).mark_processed(rows), call="rowset", tenant=tenant)

    try:
        return await until_done(f"marking {len(rows)} rows of {tenant}", marking,
                                transient=lambda exc: isinstance(exc, TransientError | AuthError))
    except MarketingCloudError as exc:  # SFMC refused the request itself: dead-letter its rows
        code = getattr(exc, "errorcode", None) or 0
        return [RowFailure(keys, code, str(exc)) for keys in rows]
