"""Adoption of the previous system's model documents (SPEC 4): ``leads-sync adopt``.

The previous system identified a model document only by ``externalSource.namespace`` + ``identifier``,
with a MongoDB-generated ``_id`` and no ``entity``. Adopting one gives it the entity of the legacy tenant
(``LEADS_LEGACY_TENANT``) and nothing else, so it keeps its ``_id``, its editor-owned fields and every
click document that references it; from then on the sinks find it by ``entity`` like their own documents.

Adoption runs once, before the first worker, as a command: one cursor per collection in ``_id`` order, written
in batches, idempotent and resumable (it only ever picks documents that still have no ``entity``). A worker
refuses to start while documents without an ``entity`` remain, so no worker can insert a duplicate of one.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from bson import ObjectId
from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, CursorNotFound

from streams.entity_ids import NAMESPACES, EntityType, entity
from streams.mongo import DUPLICATE_KEY, with_backoff
from streams.references import COLLECTIONS

STATE = "leads-data-sync"
"""The collection of this system's own state; its document ``_id: "adoption"`` records a finished adoption
(``tenant``, ``at`` in epoch seconds and, when ``adopt`` wrote it, ``counts``)."""
SKIPPED = "adoptionSkipped"
"""Set (with the reason) on a legacy document adoption could not take: no identifier, or a duplicate."""
UNADOPTED = {"entity": {"$exists": False}, SKIPPED: {"$exists": False}}

Progress = Callable[[str, "Adopted", float], None]
"""Called after each batch with the collection, its counts so far and the seconds since it started."""


class NotAdopted(RuntimeError):
    """The database holds documents a worker would duplicate: the message says what to run."""


@dataclass
class Adopted:
    """Counts of one collection's adoption."""

    adopted: int = 0
    skipped: int = 0


async def adopt(db: AsyncDatabase, tenant: str, *, batch: int = 1000,
                progress: Progress | None = None) -> dict[str, Adopted]:
    """Give every legacy model document of ``db`` the entity of ``tenant``; return ``{collection: Adopted}``.

    Documents without an identifier, or a second document for the same (namespace, identifier), are left
    as they are and marked ``adoptionSkipped`` with the reason. Raises ``NotAdopted`` when ``db`` was already
    adopted for another tenant; pymongo errors that are not transient."""
    done = await db[STATE].find_one({"_id": "adoption"})
    if done and done.get("tenant") not in (None, tenant):
        raise NotAdopted(f"database {db.name} was adopted for tenant {done['tenant']!r}, not {tenant!r}")
    counts: dict[str, Adopted] = {}
    for kind, collection in COLLECTIONS.items():
        counts[collection] = await _adopt_collection(db, collection, kind, tenant, batch, progress)
    await db[STATE].update_one({"_id": "adoption"}, {"$set": {
        "tenant": tenant, "at": time.time(),
        "counts": {name: vars(count) for name, count in counts.items()}}}, upsert=True)
    return counts


@dataclass
class _Scan:
    """Where one collection's adoption stands: its counts, and the ``_id`` of the last document handled."""

    count: Adopted
    after: ObjectId | None = None


async def _adopt_collection(db: AsyncDatabase, collection: str, kind: EntityType, tenant: str, batch: int,
                            progress: Progress | None) -> Adopted:
    scan, started = _Scan(Adopted()), time.monotonic()
    # one cursor over the collection, opened again after the last page handled if the connection drops or the
    # server forgot the cursor (a long outage): a query per page would make the server find its place again
    # for each page (on this stack's server a scan: quadratic in the collection)
    while True:
        try:
            await with_backoff(f"read {collection}", partial(_adopt_pages, db[collection], kind, tenant, batch,
                                                             progress, scan, started))
            return scan.count
        except CursorNotFound:
            continue


async def _adopt_pages(target: AsyncCollection, kind: EntityType, tenant: str, batch: int,
                       progress: Progress | None, scan: _Scan, started: float) -> None:
    query: dict[str, Any] = {"externalSource.namespace": NAMESPACES[kind], **UNADOPTED}
    if scan.after is not None:
        query["_id"] = {"$gt": scan.after}
    async with target.find(query, {"externalSource.identifier": 1}).sort("_id", 1).batch_size(batch) as cursor:
        async for docs in _pages(cursor, batch):
            await _adopt_page(target, docs, kind, tenant, scan)
            if progress:
                progress(target.name, scan.count, time.monotonic() - started)


async def _pages(cursor: AsyncIterable[dict[str, Any]], size: int) -> AsyncIterator[list[dict[str, Any]]]:
    """The cursor's documents in lists of ``size`` (the last one shorter)."""
    page: list[dict[str, Any]] = []
    async for doc in cursor:
        page.append(doc)
        if len(page) == size:
            yield page
            page = []
    if page:
        yield page


async def _adopt_page(target: AsyncCollection, docs: list[dict[str, Any]], kind: EntityType, tenant: str,
                      scan: _Scan) -> None:
    ops, skipped = _adoptions(docs, kind, tenant)
    duplicates = await _write(target, ops)
    skipped += duplicates
    if skipped:
        marks = [UpdateOne({"_id": _id}, {"$set": {SKIPPED: reason}}) for _id, reason in skipped]
        await with_backoff(f"mark skipped {target.name}", partial(target.bulk_write, marks))
    scan.count.adopted += len(ops) - len(duplicates)
    scan.count.skipped += len(skipped)
    scan.after = docs[-1]["_id"]


def _adoptions(docs: list[dict[str, Any]], kind: EntityType,
               tenant: str) -> tuple[list[tuple[ObjectId, str]], list[tuple[ObjectId, str]]]:
    """``(_id, entity)`` to set, and ``(_id, reason)`` of documents without an identifier."""
    ops, skipped = [], []
    for doc in docs:
        ident = str((doc.get("externalSource") or {}).get("identifier") or "").strip()
        if ident:
            ops.append((doc["_id"], entity(tenant, kind, ident)))
        else:
            skipped.append((doc["_id"], "no externalSource.identifier"))
    return ops, skipped


async def _write(target: AsyncCollection, ops: list[tuple[ObjectId, str]]) -> list[tuple[ObjectId, str]]:
    """Set each entity; return ``(_id, reason)`` of the documents whose entity another document already has."""
    if not ops:
        return []
    return await with_backoff(f"adopt {target.name}", partial(_set_entities, target, ops))


async def _set_entities(target: AsyncCollection, ops: list[tuple[ObjectId, str]]) -> list[tuple[ObjectId, str]]:
    # a duplicate here is a second legacy document of one entity, for good: an answer, not a retry
    try:
        await target.bulk_write(
            [UpdateOne({"_id": _id, "entity": {"$exists": False}}, {"$set": {"entity": key}}) for _id, key in ops],
            ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if not all(error.get("code") == DUPLICATE_KEY for error in errors):
            raise
        return [(ops[error["index"]][0], f"duplicate of the document of {ops[error['index']][1]}")
                for error in errors]
    return []


async def check_adopted(db: AsyncDatabase, legacy_tenant: str | None) -> None:
    """Return when no worker could duplicate a document of ``db``: adopted for ``legacy_tenant``, or holding
    no model document without an ``entity`` (then recorded, so the scan runs once). Raises ``NotAdopted``."""
    done = await db[STATE].find_one({"_id": "adoption"})
    if done is not None:
        if legacy_tenant and done.get("tenant") not in (None, legacy_tenant):
            raise NotAdopted(f"database {db.name} was adopted for tenant {done['tenant']!r}, but "
                             f"LEADS_LEGACY_TENANT is {legacy_tenant!r}")
        if not legacy_tenant and done.get("tenant"):
            raise NotAdopted(f"database {db.name} holds documents adopted for tenant {done['tenant']!r}: "
                             f"set LEADS_LEGACY_TENANT={done['tenant']}")
        return
    for collection in COLLECTIONS.values():
        if await db[collection].find_one(UNADOPTED, {"_id": 1}) is not None:
            raise NotAdopted(
                f"database {db.name} holds documents of the previous system ({collection} without an entity): "
                "set LEADS_LEGACY_TENANT to the tenant of the business unit that owns them and run "
                "`leads-sync adopt` before starting workers (README: Existing database)")
    await db[STATE].update_one({"_id": "adoption"}, {"$setOnInsert": {"tenant": None, "at": time.time()}},
                               upsert=True)
