"""The MongoDB-protocol server of the stack does what the sinks rely on (SPEC section 5)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from bson import ObjectId
from pymongo import ASCENDING, InsertOne, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

pytestmark = pytest.mark.stack

DAY = datetime(2020, 9, 7, 5, tzinfo=UTC)
KEY_FIELDS = [("day", ASCENDING), ("job", ASCENDING), ("url", ASCENDING), ("usr", ASCENDING)]


def click_key() -> dict:
    return {"day": DAY, "job": ObjectId(), "url": ObjectId(), "usr": ObjectId()}


def click_update(guid: str, when: datetime, *, bot: bool = False) -> dict:
    add, remove = ("bots", "guids") if bot else ("guids", "bots")
    return {
        "$max": {"last": when},
        "$addToSet": {add: {"$each": [guid]}},
        "$pull": {remove: guid},
        "$setOnInsert": {"n": 0},
    }


async def test_update_one_upsert_operators(mongo_db):
    clicks = mongo_db["event-email-clicks"]
    key = click_key()
    first = await clicks.update_one(
        key,
        {
            "$set": {"seen": 1},
            "$setOnInsert": {"n": 0, "createdAt": DAY},
            "$max": {"last": DAY},
            "$addToSet": {"guids": {"$each": ["a", "b", "a"]}},
            "$pull": {"bots": "a"},
        },
        upsert=True,
    )
    assert first.upserted_id is not None
    second = await clicks.update_one(
        key,
        {
            "$set": {"seen": 2},
            "$setOnInsert": {"n": 99, "createdAt": DAY + timedelta(days=1)},
            "$max": {"last": DAY - timedelta(hours=1)},
            "$addToSet": {"bots": {"$each": ["c"]}, "guids": {"$each": ["b"]}},
        },
        upsert=True,
    )
    assert second.matched_count == 1 and second.upserted_id is None
    await clicks.update_one(key, click_update("c", DAY + timedelta(hours=2)), upsert=True)
    await clicks.update_one(key, click_update("a", DAY + timedelta(hours=1), bot=True), upsert=True)
    doc = await clicks.find_one(key)
    assert doc["_id"] == first.upserted_id
    assert doc["seen"] == 2 and doc["n"] == 0
    assert doc["createdAt"].replace(tzinfo=UTC) == DAY
    assert doc["last"].replace(tzinfo=UTC) == DAY + timedelta(hours=2)
    assert sorted(doc["guids"]) == ["b", "c"]
    assert doc["bots"] == ["a"]


async def test_unordered_bulk_upserts(mongo_db):
    clicks = mongo_db["event-email-clicks"]
    await clicks.create_index(KEY_FIELDS, unique=True)
    keys = [click_key() for _ in range(50)]
    ops = [UpdateOne(key, click_update(f"g{i}", DAY), upsert=True) for i, key in enumerate(keys)]
    ops += [UpdateOne(keys[0], click_update("extra", DAY + timedelta(minutes=5)), upsert=True)]
    result = await clicks.bulk_write(ops, ordered=False)
    assert result.upserted_count == 50 and result.matched_count == 1
    again = await clicks.bulk_write(
        [UpdateOne(key, click_update(f"g{i}", DAY), upsert=True) for i, key in enumerate(keys)], ordered=False
    )
    assert again.upserted_count == 0 and again.matched_count == 50
    assert await clicks.count_documents({}) == 50
    first = await clicks.find_one(keys[0])
    assert sorted(first["guids"]) == ["extra", "g0"] and first["n"] == 0
    assert first["last"].replace(tzinfo=UTC) == DAY + timedelta(minutes=5)


async def test_compound_unique_index(mongo_db):
    clicks = mongo_db["event-email-clicks"]
    name = await clicks.create_index(KEY_FIELDS, unique=True)
    assert await clicks.create_index(KEY_FIELDS, unique=True) == name  # idempotent
    indexes = [index async for index in await clicks.list_indexes()]
    assert [index["name"] for index in indexes].count(name) == 1
    assert next(index for index in indexes if index["name"] == name).get("unique") is True
    key = click_key()
    await clicks.insert_one({**key, "n": 0})
    with pytest.raises(DuplicateKeyError) as caught:
        await clicks.insert_one({**key, "n": 1})
    assert caught.value.code == 11000
    other = click_key()
    with pytest.raises(BulkWriteError) as bulk:
        await clicks.bulk_write([InsertOne({**key}), InsertOne({**other})], ordered=False)
    assert [error["code"] for error in bulk.value.details["writeErrors"]] == [11000]
    assert bulk.value.details["nInserted"] == 1
    assert await clicks.count_documents({}) == 2


async def test_find_in(mongo_db):
    sends = mongo_db["email-sends"]
    await sends.insert_many([{"entity": f"mc.ien.send*{i}", "n": i} for i in range(10)])
    found = await sends.find({"entity": {"$in": ["mc.ien.send*2", "mc.ien.send*7", "nope"]}}).to_list()
    assert sorted(doc["n"] for doc in found) == [2, 7]
