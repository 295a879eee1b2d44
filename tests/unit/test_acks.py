"""Acks by the full primary key (issue 14.5), the SQS ack egress's dead letters in the ``ack`` shape, and
requeueing a dead letter of the old SQS-egress shape (issue 14.4): reported, not a KeyError."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from streams.agents import acker, sqs_acks
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
    assert acker.primary_key(ROW) != acker.primary_key(TWIN)
    assert acker.primary_key({**ROW, "LinkContent": "x"}) == acker.primary_key(ROW)


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
    monkeypatch.setattr(acker, "send_dead_letter", send_dead_letter)
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
