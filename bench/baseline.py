"""The original design's algorithm (seed.md's Lambda), as the baseline of issue 6.

Rows are read from the click log and handled in batches of 10; for each batch, one after the other:
fetch its sends and its subscribers (``IN``), their emails, each email's category tree level by level
up to the root, then upsert every model and the batch's clicks (pymongo, unordered bulks, the project's
document builders) and mark the 10 rows processed, one rowset call per row: the original's
mark-as-processed handler takes a single queue record. No cache survives a batch. It uses the project's
SFMC client. ``run_baseline`` stops after ``seconds`` (or when the rows run out) and reports its rate.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import MongoClient

from stack.demo import unit_settings
from streams.clicks import RowRejected, parse_row, row_keys
from streams.entity_ids import entity
from streams.marketing_cloud import MarketingCloudClient
from streams.settings import BusinessUnit

from .limit import click_operations, create_indexes, model_operations

BATCH = 10


async def _batch(client: MarketingCloudClient, tenant: str, rows: list[dict[str, str]], skip: frozenset[str],
                 db: Any, url_ids: dict[str, list[ObjectId]]) -> None:
    events = []
    for row in rows:
        try:
            events.append((entity(tenant, "send", row["JobID"].strip()), parse_row(tenant, row, skip)))
        except RowRejected:
            continue
    if events:
        ops, _ = await model_operations(client, tenant, events, url_ids)
        for name in ("identities", "email-categories", "email-deployments", "email-sends", "email-send-urls"):
            if ops.get(name):
                db[name].bulk_write(ops[name], ordered=False)
    for clicks in click_operations(events):
        if clicks:
            db["event-email-clicks"].bulk_write(clicks, ordered=False)
    for row in rows:
        await client.mark_processed([row_keys(row)])


async def run_baseline(dataset: dict[str, Any], emulator_url: str, mongo_url: str, database: str,
                       seconds: float) -> dict[str, Any]:
    """Run the baseline on the first BU for at most ``seconds``; rows/s over the rows it finished."""
    unit = dataset["units"][0]
    url_ids = {ack["shortId"]: [ObjectId(u) for u in ack["urlIds"]] for ack in dataset["url_acknowledgments"]}
    mongo: MongoClient = MongoClient(mongo_url, tz_aware=True)
    mongo.drop_database(database)
    db = mongo[database]
    create_indexes(db)
    since = datetime.now(UTC) - timedelta(days=20 * 365)
    rows_done = batches = 0
    started = time.perf_counter()
    try:
        async with MarketingCloudClient(BusinessUnit(**unit_settings(unit, emulator_url))) as client:
            async for page in client.click_rows(since):
                for i in range(0, len(page), BATCH):
                    await _batch(client, unit["tenant"], page[i : i + BATCH], frozenset(unit.get("skip_job_ids", [])),
                                 db, url_ids)
                    rows_done += len(page[i : i + BATCH])
                    batches += 1
                    if time.perf_counter() - started >= seconds:
                        break
                else:
                    continue
                break
        elapsed = time.perf_counter() - started
        return {"rows": rows_done, "batches": batches, "seconds": elapsed, "rows_per_s": rows_done / elapsed}
    finally:
        mongo.drop_database(database)
        mongo.close()
