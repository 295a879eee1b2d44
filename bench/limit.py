"""The Mongo limit: the final documents of a dataset, built with the project's own builders, written to
an empty database with unordered bulk upserts straight from pymongo (no Kafka, no SFMC in the timing).

The entity records are read once from the emulator with the project's SFMC client (before the timed
part), turned into the snapshots the resolvers would publish and into the sinks' ``UpdateOne``s.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, MongoClient, UpdateOne
from pymongo.database import Database

from stack.demo import unit_settings
from streams import documents
from streams.clicks import RowRejected, click_updates, parse_row
from streams.entity_ids import EntityType, References, derived_ids, entity, snapshot_data
from streams.marketing_cloud import MarketingCloudClient
from streams.mongo import INDEXES
from streams.settings import BusinessUnit
from streams.topic_records import ClickEvent, EntitySnapshot


async def model_operations(client: MarketingCloudClient, tenant: str, events: list[tuple[str, ClickEvent]],
                           url_ids: dict[str, list[ObjectId]]) -> tuple[dict[str, list[UpdateOne]], dict[str, int]]:
    """Fetch what ``events`` refer to (their sends and subscribers, the sends' emails, the folder trees up to
    the root) with the project's client, and build the models' upserts with its document builders, as the
    resolvers and the models sink would. Returns the upserts by collection and the entities by kind."""
    sends = await client.sends({send.rpartition("*")[2] for send, _ in events})
    subscribers = await client.subscribers({event.subscriber.rpartition("*")[2] for _, event in events})
    emails = await client.emails({s.email_id for s in sends if s.email_id})
    folders: dict[int, Any] = {}
    wanted = {e.category_id for e in emails if e.category_id}
    while wanted:
        for folder in await client.folders(wanted):
            folders[folder.id] = folder
        wanted = {f.parent_id for f in folders.values() if f.parent_id and f.parent_id not in folders}
    now = time.time()

    def snap(kind: EntityType, record: Any, **data: Any) -> EntitySnapshot:
        return EntitySnapshot(entity=entity(tenant, kind, record.id), tenant=tenant, kind=kind,
                              data={**snapshot_data(record), **data}, retrieved_at=now)

    def path(folder: Any) -> list[str]:
        names = [folder.name]
        while folder.parent_id and folder.parent_id in folders:
            folder = folders[folder.parent_id]
            names.append(folder.name)
        return names[::-1]

    ids = derived_ids([*(entity(tenant, "category", f) for f in folders),
                       *(entity(tenant, "email", e.id) for e in emails),
                       *(entity(tenant, "email", s.email_id) for s in sends if s.email_id),
                       *(entity(tenant, "send", s.id) for s in sends)])
    acks: dict[str, set[str]] = defaultdict(set)
    for send_entity, event in events:
        acks[send_entity].add(event.ack)
    email_snaps = {e.id: snap("email", e) for e in emails}
    ops: dict[str, list[UpdateOne]] = defaultdict(list)
    ops["identities"] = [documents.identity_update(snap("subscriber", s)) for s in subscribers]
    ops["email-categories"] = [documents.category_update(snap("category", f, path=path(f)), ids)
                               for f in folders.values()]
    ops["email-deployments"] = [documents.deployment_update(s, {}, ids) for s in email_snaps.values()]
    ops["email-categories"] += [documents.category_has_deployments(tenant, e.category_id) for e in emails
                                if e.category_id]
    for send in sends:
        send_snap = snap("send", send).derive(acks=sorted(acks[entity(tenant, "send", send.id)]))
        ops["email-sends"].append(documents.send_update(send_snap, {}, ids))
        email = email_snaps.get(send.email_id) if send.email_id else None
        category = documents.category_ref(email) if email else None
        ops["email-send-urls"] += documents.send_url_updates(send_snap, category, url_ids, ids)
    counts = {"send": len(sends), "subscriber": len(subscribers), "email": len(emails), "category": len(folders)}
    return ops, counts


def events_of(unit: dict[str, Any]) -> tuple[list[tuple[str, ClickEvent]], int]:
    """(send entity, event) for every row the pipeline turns into a click (first reading of a row ID),
    and the number of rows it acks (clicks + skipped rows)."""
    tenant, skip = unit["tenant"], frozenset(unit.get("skip_job_ids", []))
    seen: set[str] = set()
    events: list[tuple[str, ClickEvent]] = []
    acked = 0
    for row in unit["rows"]:
        row_id = (row.get("ID") or "").strip()
        if row_id in seen:
            continue
        seen.add(row_id)
        try:
            event = parse_row(tenant, row, skip)
        except RowRejected as exc:
            acked += exc.skip
            continue
        events.append((entity(tenant, "send", row["JobID"].strip()), event))
        acked += 1
    return events, acked


def event_ids(events: list[tuple[str, ClickEvent]]) -> References:
    """The ``_id``s of the sends and subscribers of ``events`` in a database without legacy documents."""
    return derived_ids(key for send, event in events for key in (send, event.subscriber))


def click_operations(events: list[tuple[str, ClickEvent]]) -> tuple[list[UpdateOne], list[UpdateOne]]:
    """The two bulks of ``events``' click documents (guids, then bots), as the clicks sink writes them."""
    updates = click_updates(events, event_ids(events))
    return [u.guids for u in updates], [u.bots for u in updates if u.bots]


async def final_operations(dataset: dict[str, Any], emulator_url: str) -> dict[str, Any]:
    """Every write of a clean run, by collection, plus the distinct entities it refers to."""
    ops: dict[str, list[UpdateOne]] = defaultdict(list)
    entities: dict[str, int] = defaultdict(int)
    url_ids = {ack["shortId"]: [ObjectId(u) for u in ack["urlIds"]] for ack in dataset["url_acknowledgments"]}
    acked_total = 0
    for unit in dataset["units"]:
        tenant = unit["tenant"]
        events, acked = events_of(unit)
        acked_total += acked
        guid_ops, bot_ops = click_operations(events)
        ops["event-email-clicks"] += guid_ops
        ops["event-email-clicks:bots"] += bot_ops
        async with MarketingCloudClient(BusinessUnit(**unit_settings(unit, emulator_url))) as client:
            unit_ops, counts = await model_operations(client, tenant, events, url_ids)
        for name, items in unit_ops.items():
            ops[name] += items
        for kind, count in counts.items():
            entities[kind] += count
    return {"ops": dict(ops), "entities": dict(entities), "acked_rows": acked_total}


def create_indexes(db: Database) -> None:
    """The worker's indexes (``streams.mongo.INDEXES``), with the synchronous client."""
    for name, fields, options in INDEXES:
        db[name].create_index([(f, ASCENDING) for f in fields], **options)


def write_limit(mongo_url: str, database: str, ops: dict[str, list[UpdateOne]], bulk: int = 1000) -> dict[str, Any]:
    """Write ``ops`` into an empty ``database`` (indexes as the worker creates them); time the writes only:
    ``{"operations", "seconds", "ops_per_s", "started", "documents"}`` (``started``: when the writes began, epoch
    seconds; ``documents``: the documents written, by collection: what a clean run's database holds)."""
    client: MongoClient = MongoClient(mongo_url, tz_aware=True)
    try:
        client.drop_database(database)
        db = client[database]
        create_indexes(db)
        order = ["identities", "email-categories", "email-deployments", "email-sends", "email-send-urls",
                 "event-email-clicks", "event-email-clicks:bots"]
        count = 0
        started_at, started = time.time(), time.perf_counter()
        for name in order:
            items = ops.get(name, [])
            for i in range(0, len(items), bulk):
                db[name.partition(":")[0]].bulk_write(items[i : i + bulk], ordered=False)
            count += len(items)
        seconds = time.perf_counter() - started
        documents = {name: db[name].count_documents({}) for name in order if ":" not in name}
        return {"operations": count, "seconds": seconds, "ops_per_s": count / seconds if seconds else 0.0,
                "started": started_at, "documents": documents}
    finally:
        client.drop_database(database)
        client.close()
