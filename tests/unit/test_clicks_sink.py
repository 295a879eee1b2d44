"""The clicks sink (``streams.clicks_sink.ClicksSink``) on a real MongoDB, with in-memory outputs: a row is acked
only once MongoDB has its click, and a click whose document MongoDB refuses is dead-lettered and set aside, not
acked."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from streams.clicks_sink import CLICKS, ClicksSink
from streams.entity_ids import object_id
from streams.references import DocumentIds
from streams.topic_records import ClickEvent, ClickEvents

SEND = "mc.ien.send*607105"
DAY = datetime(2020, 9, 7, 5, tzinfo=UTC).timestamp()
URL = "5f47e1c107809f52ef34357c"


def click(row_id: str, subscriber: str) -> ClickEvent:
    keys = {"ID": row_id, "JobID": "607105", "SubscriberID": subscriber}
    return ClickEvent(row_id, f"mc.ien.subscriber*{subscriber}", URL, "k9", DAY + 60, DAY, False, keys)


class Outputs:
    """``streams.clicks_sink.Outputs`` in memory; ``calls`` holds what was sent, in order. An ack checks that
    MongoDB holds a click of each row it acks."""

    def __init__(self, db: AsyncDatabase) -> None:
        self.db = db
        self.calls: list[tuple[Any, ...]] = []

    async def processed(self, tenant: str, rows: Sequence[dict[str, str]]) -> list[Any]:
        for row in rows:
            assert await self.db[CLICKS].count_documents({"guids": row["ID"]}) == 1, row
        self.calls.append(("processed", tenant, [row["ID"] for row in rows]))
        return []

    async def dead_letter(self, tenant: str, send: str, event: ClickEvent, reason: str) -> list[Any]:
        self.calls.append(("dead_letter", tenant, send, event.row_id, reason))
        return []

    async def unwritten(self, tenant: str, rows: Sequence[dict[str, str]], at: float) -> list[Any]:
        self.calls.append(("unwritten", tenant, [row["ID"] for row in rows]))
        return []


async def test_written_clicks_are_acked_and_a_refused_document_is_dead_lettered(mongo_db: AsyncDatabase) -> None:
    natural = {"day": datetime.fromtimestamp(DAY, UTC), "job": object_id(SEND), "url": ObjectId(URL),
               "usr": object_id("mc.ien.subscriber*2")}
    await mongo_db[CLICKS].insert_one({**natural, "guids": "not a list"})  # MongoDB refuses $addToSet on it
    outputs = Outputs(mongo_db)
    sink = ClicksSink(mongo_db, DocumentIds(mongo_db, None, 100), outputs)
    batch = [ClickEvents(tenant="ien", sends={SEND: [list(click("r1", "1")), list(click("r2", "2"))]},
                         repeats=[{"ID": "r1"}])]
    await sink.write(batch)
    [letter, unwritten, processed] = outputs.calls
    assert letter[:4] == ("dead_letter", "ien", SEND, "r2")
    assert letter[4].startswith("MongoDB refused the click's document: ")
    assert "Cannot apply $addToSet to non-array field" in letter[4]
    assert unwritten == ("unwritten", "ien", ["r2"])
    assert processed == ("processed", "ien", ["r1", "r1"])  # the click, and the repeat of an older record
    doc = await mongo_db[CLICKS].find_one({"guids": "r1"})
    assert doc is not None and doc["_id"] == object_id(f"click|{DAY}|{SEND}|{URL}|mc.ien.subscriber*1")


async def test_store_acks_nothing(mongo_db: AsyncDatabase) -> None:
    """What replay writes through: the clicks and what MongoDB refused, and no output at all."""
    outputs = Outputs(mongo_db)
    written, refused = await ClicksSink(mongo_db, DocumentIds(mongo_db, None, 100), outputs).store(
        [ClickEvents(tenant="ien", sends={SEND: [list(click("r1", "1"))]})])
    assert [(tenant, event.row_id) for tenant, event in written] == [("ien", "r1")] and refused == []
    assert outputs.calls == []
