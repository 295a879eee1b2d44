"""``leads-sync adopt``'s logic (``streams.adoption``) on a real MongoDB server: duplicates and documents
without an identifier are skipped with a reason, an interrupted adoption resumes where it stopped, and a
database adopted for one tenant refuses another."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from streams.adoption import SKIPPED, Adopted, NotAdopted, adopt, check_adopted
from streams.entity_ids import NAMESPACES
from streams.mongo import INDEXES

TENANT = "ien"


async def _legacy_database(db: AsyncDatabase, identifiers: list[Any]) -> None:
    """The sinks' indexes and one legacy identity per identifier (``None``: none at all)."""
    for collection, fields, options in INDEXES:
        await db[collection].create_index([(name, ASCENDING) for name in fields], **options)
    if identifiers:
        await db["identities"].insert_many([
            {"externalSource": {"namespace": NAMESPACES["subscriber"],
                                **({} if ident is None else {"identifier": ident})},
             "email": f"person{n}@example.com"} for n, ident in enumerate(identifiers)])


async def _adopt(db: AsyncDatabase, **options: Any) -> dict[str, Adopted]:
    return await asyncio.wait_for(adopt(db, TENANT, **options), timeout=60)  # a retry loop would hang here


async def test_duplicates_and_documents_without_an_identifier_are_skipped(mongo_db: AsyncDatabase) -> None:
    # the previous system wrote identifiers as ints and as strings: 70000001 and "70000001" are one entity
    await _legacy_database(mongo_db, [70000001, "70000001", " 70000001 ", None, "", 70000002])
    counts = await _adopt(mongo_db, batch=2)
    assert counts["identities"] == Adopted(adopted=2, skipped=4)
    docs = await mongo_db["identities"].find({}).sort("_id", 1).to_list()
    assert [doc.get("entity") for doc in docs] == [
        "mc.ien.subscriber*70000001", None, None, None, None, "mc.ien.subscriber*70000002"]
    reasons = [doc.get(SKIPPED) for doc in docs]
    assert reasons[0] is None and reasons[5] is None
    assert reasons[1] == reasons[2] == "duplicate of the document of mc.ien.subscriber*70000001"
    assert reasons[3] == reasons[4] == "no externalSource.identifier"
    await check_adopted(mongo_db, TENANT)  # skipped documents do not hold workers back


class Interrupted(Exception):
    """The command stopped (say, Ctrl-C or a lost connection) after a batch."""


async def test_an_interrupted_adoption_resumes(mongo_db: AsyncDatabase) -> None:
    await _legacy_database(mongo_db, list(range(70000001, 70000026)))

    def interrupt(collection: str, count: Adopted, elapsed: float) -> None:
        if collection == "identities":
            raise Interrupted

    with pytest.raises(Interrupted):
        await _adopt(mongo_db, batch=10, progress=interrupt)
    assert await mongo_db["identities"].count_documents({"entity": {"$exists": True}}) == 10
    with pytest.raises(NotAdopted, match="leads-sync adopt"):
        await check_adopted(mongo_db, TENANT)

    counts = await _adopt(mongo_db, batch=10)
    assert counts["identities"] == Adopted(adopted=15, skipped=0)
    entities = {doc["entity"] for doc in await mongo_db["identities"].find({}).to_list()}
    assert entities == {f"mc.ien.subscriber*{n}" for n in range(70000001, 70000026)}
    assert (await _adopt(mongo_db))["identities"] == Adopted()  # idempotent
    await check_adopted(mongo_db, TENANT)


async def test_a_database_adopted_for_one_tenant_refuses_another(mongo_db: AsyncDatabase) -> None:
    await _legacy_database(mongo_db, [70000001])
    await _adopt(mongo_db)
    with pytest.raises(NotAdopted, match="adopted for tenant 'ien'"):
        await adopt(mongo_db, "other")
    with pytest.raises(NotAdopted, match="LEADS_LEGACY_TENANT is 'other'"):
        await check_adopted(mongo_db, "other")
    with pytest.raises(NotAdopted, match="set LEADS_LEGACY_TENANT=ien"):
        await check_adopted(mongo_db, None)


async def test_a_database_without_legacy_documents_needs_no_adoption(mongo_db: AsyncDatabase) -> None:
    await _legacy_database(mongo_db, [])
    await check_adopted(mongo_db, None)
    await check_adopted(mongo_db, TENANT)  # a legacy tenant named for an empty database: nothing to adopt
