"""SQS shell ordering with a fake SQS client: delete only after the produce is acknowledged; per-entry
send failures are retried; visibility is extended while a step is slow."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from streams.edges.formats import Message
from streams.edges.sqs import keep_visible, send_messages
from streams.edges.sqs_ingress import SqsIngress
from tests.edges.helpers import Produced, unit_settings
from tests.pipeline.harness import wait_until_async


class FakeSqs:
    def __init__(self, send_failures: list[list[dict[str, Any]]] | None = None) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.send_failures = send_failures or []

    async def delete_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
        self.calls.append(("delete", [e["ReceiptHandle"] for e in Entries]))
        return {"Successful": [{"Id": e["Id"]} for e in Entries]}

    async def change_message_visibility_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(("extend", [e["ReceiptHandle"] for e in Entries]))
        return {"Successful": [{"Id": e["Id"]} for e in Entries]}

    async def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
        self.calls.append(("send", [e["MessageBody"] for e in Entries]))
        failures = self.send_failures.pop(0) if self.send_failures else []
        failed = {f["Id"] for f in failures}
        return {"Successful": [{"Id": e["Id"]} for e in Entries if e["Id"] not in failed], "Failed": failures}


def _message(handle: str, body: Any) -> dict[str, Any]:
    return {"MessageId": f"m-{handle}", "ReceiptHandle": handle,
            "Body": body if isinstance(body, str) else orjson.dumps(body).decode()}


class Acknowledged(Produced):
    """Produces after a moment (the broker's acknowledgement), noting it among the SQS calls."""

    def __init__(self, sqs: FakeSqs) -> None:
        super().__init__()
        self.sqs = sqs

    async def produce(self, messages: list[Any], rejected: list[Any], source: str) -> None:
        # the broker's acknowledgement takes a while: the fake's latency is what a delete must not run ahead of
        # (no condition to wait for; the test checks what handle() awaits)
        await asyncio.sleep(0.01)
        self.sqs.calls.append(("produced", None))
        await super().produce(messages, rejected, source)


def ingress(bridge: Produced) -> SqsIngress:
    return SqsIngress(unit_settings("ien", sqs_queue_name="clicks"), None, bridge)  # type: ignore[arg-type]


async def test_delete_comes_after_the_produce_is_acknowledged() -> None:
    sqs = FakeSqs()
    produced = Acknowledged(sqs)
    received = [_message("h1", {"tenant": "ien", "row": {"ID": "1", "JobID": "5"}}), _message("h2", "{oops")]
    await ingress(produced).handle(sqs, "url", received)
    assert [call for call, _ in sqs.calls] == ["produced", "delete"]
    assert sqs.calls[1][1] == ["h1", "h2"]  # the poison message is deleted too, after its dead letter
    messages, reasons, source = produced.batches[0]
    assert messages == [Message("ien", [{"ID": "1", "JobID": "5"}])] and source == "sqs"
    assert reasons[0].startswith("not JSON")


async def test_nothing_is_deleted_when_the_produce_fails() -> None:
    sqs = FakeSqs()
    with pytest.raises(ConnectionError):
        await ingress(Produced(fail=ConnectionError("broker down"))).handle(
            sqs, "url", [_message("h1", {"tenant": "ien", "row": {"ID": "1"}})])
    assert sqs.calls == []


async def test_visibility_is_extended_while_a_step_is_slow() -> None:
    sqs = FakeSqs()
    async with keep_visible(sqs, "url", [{"ReceiptHandle": "h1"}], timeout=0.1):  # type: ignore[arg-type]
        # the slow step: it lasts until its visibility was extended three times (every half timeout)
        await wait_until_async(lambda: len(sqs.calls) >= 3, 5, "three visibility extensions during the step",
                               explain=lambda: repr(sqs.calls))
    assert sqs.calls[:3] == [("extend", ["h1"])] * 3


async def test_failed_entries_are_retried_and_sender_faults_reported() -> None:
    sqs = FakeSqs(send_failures=[
        [{"Id": "1", "SenderFault": False, "Code": "InternalError"},
         {"Id": "2", "SenderFault": True, "Code": "InvalidMessageContents", "Message": "bad"}],
    ])
    bodies = [f"body{i}".encode() for i in range(12)]
    lost = await send_messages(sqs, "url", bodies)
    sent = [call[1] for call in sqs.calls if call[0] == "send"]
    assert [len(batch) for batch in sent] == [10, 1, 2]  # 10 a call; the retry carries only entry 1
    assert sent[1] == ["body1"]
    assert lost == [(b"body2", "InvalidMessageContents: bad")]
