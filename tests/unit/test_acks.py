"""Acks by the full primary key (issue 14.5), the SQS ack egress's dead letters in the ``ack`` shape,
requeueing a dead letter of the old SQS-egress shape (issue 14.4): reported, not a KeyError, and marking's
10006 handling (SPEC 2): ``streams.marking.Marking`` with in-memory SFMC clients and outputs, on a real
MongoDB."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from pymongo.asynchronous.database import AsyncDatabase

from streams import marking, metrics
from streams.edges import sqs_egress
from streams.marketing_cloud import RowFailure
from streams.marketing_cloud.records import primary_key
from streams.marking import Marking
from streams.outputs import KafkaMarkingOutputs
from streams.replay import Requeue
from streams.settings import load_settings
from streams.topic_records import AckBatch, DeadLetterStage

ROW = {"ID": "2c0c", "JobID": "607105", "SubscriberID": "70257389", "EventDate": "9/7/2020 7:31:04 AM",
       "IsUnique": "True", "ListID": "12"}
TWIN = {**ROW, "ListID": "13"}  # the same ID, another row of the DE


def _rows(bodies: list[bytes]) -> list[dict[str, str]]:
    return [row for body in bodies for row in orjson.loads(body)["rows"]]


def test_ack_bodies_keep_rows_that_share_an_id() -> None:
    batch = [AckBatch(tenant="ien", status="processed", rows=[ROW, TWIN]),
             AckBatch(tenant="ien", status="processed", rows=[dict(ROW)])]  # the same row acked twice
    assert _rows(sqs_egress.ack_bodies(batch)) == [ROW, TWIN]


def test_primary_key_names_every_key_field() -> None:
    assert primary_key(ROW) != primary_key(TWIN)
    assert primary_key({**ROW, "LinkContent": "x"}) == primary_key(ROW)


class Outputs:
    """``streams.marking.Outputs`` in memory: ``letters`` holds ``(tenant, keys, reason)`` of each dead letter,
    ``noted`` ``(tenant, rows)`` of each report of rows refused and recorded."""

    def __init__(self) -> None:
        self.letters: list[tuple[str, dict[str, str], str]] = []
        self.noted: list[tuple[str, list[dict[str, str]]]] = []

    async def dead_letter(self, tenant: str, keys: dict[str, str], reason: str) -> list[Any]:
        self.letters.append((tenant, keys, reason))
        return []

    async def refused(self, tenant: str, rows: list[dict[str, str]], at: float) -> list[Any]:
        self.noted.append((tenant, list(rows)))
        return []


async def test_rows_of_a_message_sqs_refuses_are_dead_lettered_as_acks() -> None:
    class Sqs:
        async def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
            return {"Failed": [{"Id": entry["Id"], "SenderFault": True, "Code": "InvalidMessageContents"}
                               for entry in Entries]}

    class Clients:
        async def get(self, service: str) -> Sqs:
            return Sqs()

    queue = sqs_egress.AckQueue(load_settings(sqs_acks_queue="https://sqs/acks"), Clients())  # type: ignore[arg-type]
    outputs = Outputs()
    await queue.publish([AckBatch(tenant="ien", status="processed", rows=[ROW, TWIN])], outputs)
    reason = "SQS refused the ack message: InvalidMessageContents: "
    assert outputs.letters == [("ien", ROW, reason), ("ien", TWIN, reason)]
    assert outputs.noted == []


async def test_marking_dead_letters_on_kafka_are_of_the_ack_shape() -> None:
    letters: list[tuple[Any, ...]] = []

    class Topics:
        async def send_dead_letter(self, *letter: Any) -> None:
            letters.append(letter)

    await KafkaMarkingOutputs(Topics()).dead_letter("ien", TWIN, "why")  # type: ignore[arg-type]
    assert letters == [("ien:2c0c", DeadLetterStage.ACK, "why", "ien", {"keys": TWIN})]


def test_requeue_reports_an_ack_letter_of_another_shape() -> None:
    body = orjson.dumps({"tenant": "ien", "status": "processed", "rows": [ROW]}).decode()
    requeue = Requeue(frozenset({"ien"}))
    requeue.add(DeadLetterStage.ACK, {"stage": "ack", "tenant": "ien", "source": {"queue": "acks", "body": body}})
    requeue.add(DeadLetterStage.ACK, {"stage": "ack", "tenant": "ien", "source": {"keys": ROW}})
    requeue.add(DeadLetterStage.ACKS_QUEUE, {"stage": "acks-queue", "tenant": "", "source": {"body": body}})
    assert requeue.report() == {
        "requeued": {"ack": 1, "acks-queue": 1},
        "skipped": {"ack": {"its source is not the ack shape (KeyError: 'keys')": 1}},
    }
    assert requeue.acks == {"ien": [ROW, ROW]}


class Client:
    """A business unit's SFMC client that answers each rowset call with ``failures`` (row ID → error code);
    ``calls`` holds the rows of each call."""

    def __init__(self, failures: dict[str, int]) -> None:
        self.failures = failures
        self.calls: list[list[dict[str, str]]] = []

    async def mark_processed(self, rows: Sequence[Mapping[str, str]]) -> list[RowFailure]:
        self.calls.append([dict(keys) for keys in rows])
        return [RowFailure(dict(keys), self.failures[keys["ID"]], "no") for keys in rows if keys["ID"] in self.failures]


async def _processed_events(db: AsyncDatabase) -> list[str]:
    return sorted(doc["guid"] for doc in await db[marking.PROCESSED_EVENTS].find({}, {"guid": 1}).to_list())


async def test_marking_records_10006_rows_as_processed_and_dead_letters_other_refusals(mongo_db: AsyncDatabase) -> None:
    """SPEC 2: 120 rows go out 50 to a rowset call, each row once; a row SFMC refuses with 10006 is upserted into
    ``processed-events`` and reported to ingest as refused, a row refused with another code is dead-lettered
    (stage ``ack``), and neither counts as marked."""
    rows = [{**ROW, "ID": f"r{i:03d}"} for i in range(120)]
    refused, failed = rows[7], rows[60]
    client, outputs = Client({refused["ID"]: 10006, failed["ID"]: 10001}), Outputs()
    marked = metrics.totals(metrics.rows_marked, "tenant").get("ien", 0)
    await Marking({"ien": client}.__getitem__, mongo_db, outputs).mark(
        [AckBatch(tenant="ien", status="processed", rows=rows[:80]),
         AckBatch(tenant="ien", status="processed", rows=rows[70:])])  # 10 rows twice
    assert sorted(map(len, client.calls)) == [20, 50, 50]
    assert sorted(row["ID"] for chunk in client.calls for row in chunk) == [row["ID"] for row in rows]
    assert await _processed_events(mongo_db) == [refused["ID"]]
    assert outputs.noted == [("ien", [refused])]
    assert outputs.letters == [("ien", failed, "SFMC refused to mark the row (10001): no")]
    assert metrics.totals(metrics.rows_marked, "tenant").get("ien", 0) == marked + 118


async def test_marking_keeps_tenants_apart_and_records_a_10006_row_once(mongo_db: AsyncDatabase) -> None:
    """Each tenant's rows go to its own SFMC client; a row SFMC refuses again (10006 on a later batch) is
    upserted on its guid, not recorded twice, and reported as refused each time."""
    row = {**ROW, "ID": "r1"}
    clients = {"ien": Client({"r1": 10006}), "other": Client({})}
    outputs = Outputs()
    mark = Marking(clients.__getitem__, mongo_db, outputs).mark
    for _ in range(2):
        await mark([AckBatch(tenant="ien", status="processed", rows=[row]),
                    AckBatch(tenant="other", status="processed", rows=[{**ROW, "ID": "o1"}])])
    assert [[keys["ID"] for keys in call] for call in clients["ien"].calls] == [["r1"], ["r1"]]
    assert [[keys["ID"] for keys in call] for call in clients["other"].calls] == [["o1"], ["o1"]]
    assert await _processed_events(mongo_db) == ["r1"]
    assert sorted(outputs.noted, key=lambda note: note[0]) == [("ien", [row]), ("ien", [row]), ("other", []),
                                                                ("other", [])]
    assert outputs.letters == []


async def test_a_10006_row_mongodb_does_not_record_is_dead_lettered_not_noted(mongo_db: AsyncDatabase) -> None:
    """A row SFMC refuses with 10006 counts as processed only once ``processed-events`` holds it: one MongoDB
    refuses to record (here a validator of the collection refuses its guid) is dead-lettered (stage ``ack``,
    with MongoDB's reason) and not reported to ingest as refused (whose seen-rows table would drop its later
    readings); the recorded one is."""
    await mongo_db.create_collection(marking.PROCESSED_EVENTS, validator={"guid": {"$ne": "u1"}})
    written, unwritten = {**ROW, "ID": "w1"}, {**ROW, "ID": "u1"}
    outputs = Outputs()
    fallbacks = metrics.totals(metrics.key_mismatch_fallbacks, "tenant").get("ien", 0)
    await Marking(lambda tenant: Client({"w1": 10006, "u1": 10006}), mongo_db, outputs).mark(
        [AckBatch(tenant="ien", status="processed", rows=[written, unwritten])])
    assert await _processed_events(mongo_db) == ["w1"]
    assert outputs.noted == [("ien", [written])]
    [(tenant, keys, reason)] = outputs.letters
    assert (tenant, keys) == ("ien", unwritten)
    assert reason.startswith("SFMC refused to mark the row (10006) and MongoDB refused to record it in "
                             "processed-events: ")
    assert "Document failed validation (code 121)" in reason
    assert metrics.totals(metrics.key_mismatch_fallbacks, "tenant").get("ien", 0) == fallbacks + 1
