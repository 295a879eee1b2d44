"""Acks by the full primary key (issue 14.5), the SQS ack egress's dead letters in the ``ack`` shape, and
requeueing a dead letter of the old SQS-egress shape (issue 14.4): reported, not a KeyError."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from streams import marking
from streams.agents import sqs_acks
from streams.models import AckBatch, DeadLetterStage
from streams.replay import Requeue

ROW = {"ID": "2c0c", "JobID": "607105", "SubscriberID": "70257389", "EventDate": "9/7/2020 7:31:04 AM",
       "IsUnique": "True", "ListID": "12"}
TWIN = {**ROW, "ListID": "13"}  # the same ID, another row of the DE


def _rows(bodies: list[bytes]) -> list[dict[str, str]]:
    return [row for body in bodies for row in orjson.loads(body)["rows"]]


def test_ack_bodies_keep_rows_that_share_an_id() -> None:
    batch = [AckBatch(tenant="ien", status="processed", rows=[ROW, TWIN]),
             AckBatch(tenant="ien", status="processed", rows=[dict(ROW)])]  # the same row acked twice
    assert _rows(sqs_acks.ack_bodies(batch)) == [ROW, TWIN]


def test_primary_key_names_every_key_field() -> None:
    assert marking.primary_key(ROW) != marking.primary_key(TWIN)
    assert marking.primary_key({**ROW, "LinkContent": "x"}) == marking.primary_key(ROW)


async def test_rows_of_a_message_sqs_refuses_are_dead_lettered_as_acks(monkeypatch: pytest.MonkeyPatch) -> None:
    class Sqs:
        async def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
            return {"Failed": [{"Id": entry["Id"], "SenderFault": True, "Code": "InvalidMessageContents"}
                               for entry in Entries]}

    class Clients:
        async def get(self, service: str) -> Sqs:
            return Sqs()

    async def queue_url(sqs: Any, name: str) -> str:
        return "https://sqs/acks"

    letters: list[tuple[Any, ...]] = []

    async def send_dead_letter(*letter: Any) -> asyncio.Future[None]:
        letters.append(letter)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    monkeypatch.setattr(sqs_acks, "aws", Clients())
    monkeypatch.setattr(sqs_acks, "queue_url", queue_url)
    monkeypatch.setattr(marking, "send_dead_letter", send_dead_letter)
    await sqs_acks.publish_acks([AckBatch(tenant="ien", status="processed", rows=[ROW, TWIN])])
    assert [(key, stage, tenant, source) for key, stage, _, tenant, source in letters] == [
        ("ien:2c0c", DeadLetterStage.ACK, "ien", {"keys": ROW}),
        ("ien:2c0c", DeadLetterStage.ACK, "ien", {"keys": TWIN}),
    ]
    reasons = {reason for _, _, reason, _, _ in letters}
    assert reasons == {"SQS refused the ack message: InvalidMessageContents: "}


def test_requeue_reports_an_ack_letter_of_another_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    from streams import replay

    monkeypatch.setattr(replay, "tenants", lambda: frozenset({"ien"}))
    body = orjson.dumps({"tenant": "ien", "status": "processed", "rows": [ROW]}).decode()
    requeue = Requeue()
    requeue.add(DeadLetterStage.ACK, {"stage": "ack", "tenant": "ien", "source": {"queue": "acks", "body": body}})
    requeue.add(DeadLetterStage.ACK, {"stage": "ack", "tenant": "ien", "source": {"keys": ROW}})
    requeue.add(DeadLetterStage.ACKS_QUEUE, {"stage": "acks-queue", "tenant": "", "source": {"body": body}})
    assert requeue.report() == {
        "requeued": {"ack": 1, "acks-queue": 1},
        "skipped": {"ack": {"its source is not the ack shape (KeyError: 'keys')": 1}},
    }
    assert requeue.acks == {"ien": [ROW, ROW]}


class Marking:
    """In-process stand-ins for what ``marking`` writes to: SFMC answers each rowset call with ``failures``
    (row ID → error code), MongoDB refuses the ``processed-events`` upserts of the IDs in ``unwritable``;
    ``calls``, ``upserts``, ``appended`` and ``letters`` hold what was sent."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, failures: dict[str, int],
                 unwritable: frozenset[str] = frozenset()) -> None:
        from streams.marketing_cloud import RowFailure

        self.calls: list[list[dict[str, str]]] = []
        self.upserts: list[tuple[str, list[Any]]] = []
        self.appended: list[tuple[str, list[dict[str, str]], str]] = []
        self.letters: list[tuple[Any, ...]] = []

        class Client:
            async def mark_processed(client, chunk: list[dict[str, str]]) -> list[RowFailure]:
                self.calls.append(chunk)
                return [RowFailure(keys, failures[keys["ID"]], "no") for keys in chunk if keys["ID"] in failures]

        async def bulk_upsert(collection: str, operations: list[Any]) -> dict[int, str]:
            self.upserts.append((collection, operations))
            return {index: "Cannot apply $setOnInsert (code 2)" for index, op in enumerate(operations)
                    if op._filter["guid"] in unwritable}

        async def append_click_rows(tenant: str, keys: list[dict[str, str]], *, read_at: float,
                                    source: str) -> list[Any]:
            self.appended.append((tenant, list(keys), source))
            return []

        async def send_dead_letter(*letter: Any) -> asyncio.Future[None]:
            self.letters.append(letter)
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

        monkeypatch.setattr(marking, "marketing_cloud", lambda tenant: Client())
        monkeypatch.setattr(marking, "bulk_upsert", bulk_upsert)
        monkeypatch.setattr(marking, "append_click_rows", append_click_rows)
        monkeypatch.setattr(marking, "send_dead_letter", send_dead_letter)


async def test_marking_records_10006_rows_as_processed_and_dead_letters_other_refusals(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """SPEC 2: 120 rows go out 50 to a rowset call, each row once; a row SFMC refuses with 10006 is upserted into
    ``processed-events`` and reported to ingest as refused (a ``refused`` click-rows record of its keys), a row
    refused with another code is dead-lettered (stage ``ack``), and neither counts as marked."""
    from streams import metrics
    from streams.tables.seen_rows import REFUSED_SOURCE

    rows = [{**ROW, "ID": f"r{i:03d}"} for i in range(120)]
    refused, failed = rows[7], rows[60]
    fakes = Marking(monkeypatch, {refused["ID"]: 10006, failed["ID"]: 10001})
    marked = metrics.rows_marked.value(tenant="ien")
    await marking.mark_in_sfmc([AckBatch(tenant="ien", status="processed", rows=rows[:80]),
                                AckBatch(tenant="ien", status="processed", rows=rows[70:])])  # 10 rows twice
    assert sorted(map(len, fakes.calls)) == [20, 50, 50]
    assert sorted(row["ID"] for chunk in fakes.calls for row in chunk) == [row["ID"] for row in rows]
    [(collection, operations)] = [upsert for upsert in fakes.upserts if upsert[1]]
    assert collection == marking.PROCESSED_EVENTS and len(operations) == 1
    assert operations[0]._filter == {"guid": refused["ID"]}
    assert fakes.appended == [("ien", [refused], REFUSED_SOURCE)]
    assert [(key, stage, source) for key, stage, _, _, source in fakes.letters] == [
        (f"ien:{failed['ID']}", DeadLetterStage.ACK, {"keys": failed})]
    assert metrics.rows_marked.value(tenant="ien") == marked + 118


async def test_a_10006_row_mongodb_does_not_record_is_dead_lettered_not_noted(monkeypatch: pytest.MonkeyPatch) -> None:
    """A row SFMC refuses with 10006 counts as processed only once ``processed-events`` holds it: one MongoDB
    refuses to record is dead-lettered (stage ``ack``, with MongoDB's reason) and not reported to ingest as
    refused (whose seen-rows table would drop its later readings); the recorded one is."""
    from streams import metrics
    from streams.tables.seen_rows import REFUSED_SOURCE

    written, unwritten = {**ROW, "ID": "w1"}, {**ROW, "ID": "u1"}
    fakes = Marking(monkeypatch, {"w1": 10006, "u1": 10006}, unwritable=frozenset({"u1"}))
    fallbacks = metrics.key_mismatch_fallbacks.value(tenant="ien")
    await marking.mark_in_sfmc([AckBatch(tenant="ien", status="processed", rows=[written, unwritten])])
    [(_, operations)] = fakes.upserts
    assert [op._filter["guid"] for op in operations] == ["w1", "u1"]
    assert fakes.appended == [("ien", [written], REFUSED_SOURCE)]
    [(key, stage, reason, tenant, source)] = fakes.letters
    assert (key, stage, tenant, source) == ("ien:u1", DeadLetterStage.ACK, "ien", {"keys": unwritten})
    assert reason == ("SFMC refused to mark the row (10006) and MongoDB refused to record it in processed-events: "
                      "Cannot apply $setOnInsert (code 2)")
    assert metrics.key_mismatch_fallbacks.value(tenant="ien") == fallbacks + 1
