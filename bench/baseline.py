"""The original design's algorithm (seed.md's Lambda), as the baseline of issue 6.

Rows are read from the click log and handled in batches of 10; for each batch, one after the other:
fetch its sends and its subscribers (``IN``), their emails, each email's category tree level by level
up to the root, then upsert every model and the batch's clicks (pymongo, unordered bulks, the project's
document builders) and mark the 10 rows processed. No cache survives a batch. It uses the project's
SFMC client. ``run_baseline`` stops after ``seconds`` (or when the rows run out) and reports its rate.
"""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, MongoClient

from streams import documents
from streams.clicks import RowRejected, click_updates, parse_row, row_keys
from streams.entities import entity
from streams.marketing_cloud import MarketingCloudClient
from streams.models import EntitySnapshot
from streams.mongo import INDEXES
from streams.settings import BusinessUnit

from .limit import to_data, unit_settings

BATCH = 10


async def _batch(client: MarketingCloudClient, tenant: str, rows: list[dict[str, str]], skip: frozenset[str],
                 db: Any, url_ids: dict[str, list[ObjectId]]) -> None:
    events = []
    for row in rows:
        try:
            events.append((entity(tenant, "send", row["JobID"].strip()), parse_row(tenant, row, skip)))
        except RowRejected:
            continue
    now = time.time()

    def snap(kind: str, record: Any, **data: Any) -> EntitySnapshot:
        return EntitySnapshot(entity=entity(tenant, kind, record.id), tenant=tenant, kind=kind,
                              data={**to_data(record), **data}, retrieved_at=now)

    sends = await client.sends({s.rpartition("*")[2] for s, _ in events}) if events else []
    subscribers = await client.subscribers({e.subscriber.rpartition("*")[2] for _, e in events}) if events else []
    emails = await client.emails({s.email_id for s in sends if s.email_id}) if sends else []
    folders: dict[int, Any] = {}
    wanted = {e.category_id for e in emails if e.category_id}
    while wanted:
        for folder in await client.folders(wanted):
            folders[folder.id] = folder
        wanted = {f.parent_id for f in folders.values() if f.parent_id and f.parent_id not in folders}

    def path(folder: Any) -> list[str]:
        names = [folder.name]
        while folder.parent_id and folder.parent_id in folders:
            folder = folders[folder.parent_id]
            names.append(folder.name)
        return names[::-1]

    def write(collection: str, ops: list[Any]) -> None:
        if ops:
            db[collection].bulk_write(ops, ordered=False)

    write("identities", [documents.identity_update(snap("subscriber", s)) for s in subscribers])
    write("email-categories", [documents.category_update(snap("category", f, path=path(f))) for f in folders.values()])
    email_snaps = {e.id: snap("email", e) for e in emails}
    write("email-deployments", [documents.deployment_update(s, {}) for s in email_snaps.values()])
    write("email-categories", [documents.category_has_deployments(tenant, e.category_id) for e in emails
                               if e.category_id])
    acks: dict[str, set[str]] = defaultdict(set)
    for send, event in events:
        acks[send].add(event.ack)
    url_ops = []
    for send in sends:
        send_snap = snap("send", send).derive(acks=sorted(acks[entity(tenant, "send", send.id)]))
        write("email-sends", [documents.send_update(send_snap, {})])
        email = email_snaps.get(send.email_id) if send.email_id else None
        category = documents.category_ref(email) if email else None
        url_ops += documents.send_url_updates(send_snap, category, url_ids)
    write("email-send-urls", url_ops)
    guid_ops, bot_ops = click_updates(events)
    write("event-email-clicks", guid_ops)
    write("event-email-clicks", bot_ops)
    await client.mark_processed([row_keys(row) for row in rows])


async def run_baseline(dataset: dict[str, Any], emulator_url: str, mongo_url: str, database: str,
                       seconds: float) -> dict[str, Any]:
    """Run the baseline on the first BU for at most ``seconds``; rows/s over the rows it finished."""
    unit = dataset["units"][0]
    url_ids = {ack["shortId"]: [ObjectId(u) for u in ack["urlIds"]] for ack in dataset["url_acknowledgments"]}
    mongo: MongoClient = MongoClient(mongo_url, tz_aware=True)
    mongo.drop_database(database)
    db = mongo[database]
    for name, (fields, unique) in INDEXES.items():
        db[name].create_index([(f, ASCENDING) for f in fields], unique=unique)
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
