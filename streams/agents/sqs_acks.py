"""SQS ack egress (on when ``LEADS_SQS_ACKS_QUEUE`` is set, e.g. ``clicks-processed``).

The acker then publishes acknowledged rows to that queue instead of calling SFMC (``publish_acks``),
and ``leads-sync mark-from-queue`` consumes the queue and marks the rows processed in SFMC with the
acker's own marking (``streams.marking.Marking``: 50 rows a rowset call, the 10006 fallback to ``processed-events``),
deleting each message only after its rows are marked. Message format: docs/edges.md. Marking's outputs on
the topics (``KafkaMarkingOutputs``) are here, for the acker and the command alike.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import orjson
from faust.cli import option

from streams.app import app, settings
from streams.aws import AwsClients, delete_messages, keep_visible, queue_url, send_messages
from streams.bridge import aws, dead_letters, tenants
from streams.edges import ack_messages, parse_ack_message, parse_all
from streams.marking import Marking, Outputs, primary_key
from streams.models import AckBatch, DeadLetterStage
from streams.resources import marketing_cloud, mongo
from streams.retry import until_done
from streams.tables.seen_rows import REFUSED_SOURCE
from streams.topics import Pending, append_click_rows, send_dead_letter


class KafkaMarkingOutputs:
    """``streams.marking.Outputs`` on the topics, for the acker and ``mark-from-queue``: ``dead-letter`` (stage
    ``ack``, keyed ``{tenant}:{row ID}``, source ``{"keys": its key values}``) and ``click-rows`` (source
    ``refused``: one record per partition, where the rows' readings go, whose seen-rows table then drops their
    later readings, ``Outcome.REFUSED``)."""

    async def dead_letter(self, tenant: str, keys: dict[str, str], reason: str) -> Pending:
        return [await send_dead_letter(f"{tenant}:{keys.get('ID', '')}", DeadLetterStage.ACK, reason, tenant,
                                       {"keys": keys})]

    async def refused(self, tenant: str, rows: list[dict[str, str]], at: float) -> Pending:
        return await append_click_rows(tenant, rows, read_at=at, source=REFUSED_SOURCE)


def ack_bodies(batch: list[AckBatch]) -> list[bytes]:
    """The queue messages for ``batch``: rows of one tenant and status together, each row (by its full
    primary key, as the SFMC acker marks it) once."""
    grouped: dict[tuple[str, str, str], dict[tuple[str, ...], dict[str, str]]] = defaultdict(dict)
    for ack in batch:
        for keys in ack.rows:
            grouped[(ack.tenant, ack.status, ack.reason)][primary_key(keys)] = keys
    return [body for (tenant, status, reason), rows in grouped.items()
            for body in ack_messages(tenant, status, list(rows.values()), reason)]


async def publish_acks(batch: list[AckBatch], outputs: Outputs) -> None:
    """Send the rows of ``batch`` to the acks queue; retry until SQS takes them (holding the partition,
    as the SFMC acker does). The rows of a message SQS refuses for good are dead-lettered (``outputs``, one
    letter a row, as the SFMC acker dead-letters a row SFMC refuses)."""
    bodies = ack_bodies(batch)

    async def publish() -> list[tuple[bytes, str]]:
        sqs = await aws.get("sqs")
        return await send_messages(sqs, await queue_url(sqs, settings.sqs_acks_queue or ""), bodies)

    # SQS unavailable: retry the batch (a repeated ack is harmless)
    lost = await until_done(f"publishing {len(bodies)} ack messages", publish, transient=lambda exc: True)
    messages = [(orjson.loads(body), reason) for body, reason in lost]  # {tenant, status, reason, rows}
    pending: Pending = []
    for message, reason in messages:
        for keys in message["rows"]:
            pending += await outputs.dead_letter(message["tenant"], keys, f"SQS refused the ack message: {reason}")
    await asyncio.gather(*pending)


async def mark_received(sqs: Any, url: str, received: list[dict[str, Any]], marking: Marking) -> int:
    """Mark the rows of received ack messages in SFMC (``marking``), then delete the messages; returns rows
    marked."""
    parsed, rejected = parse_all(((message["Body"], {"queue": url, "message_id": message.get("MessageId", "")})
                                  for message in received), tenants(), parse_ack_message)
    batches = [AckBatch(tenant=message.tenant, status="processed", rows=message.rows) for message in parsed]
    async with keep_visible(sqs, url, received, settings.sqs_visibility_timeout):
        await marking.mark(batches)
        await dead_letters(rejected, DeadLetterStage.ACKS_QUEUE)
    await delete_messages(sqs, url, received)
    return sum(len(batch.rows) for batch in batches)


@app.command(
    option("--until-empty", is_flag=True, default=False, help="Stop when a receive finds the queue empty."),
)
async def mark_from_queue(self: Any, until_empty: bool) -> None:
    """Mark the rows on the acks queue (LEADS_SQS_ACKS_QUEUE) processed in SFMC."""
    if not settings.sqs_acks_queue:
        raise SystemExit("LEADS_SQS_ACKS_QUEUE is not set")
    marked = 0
    try:
        async with AwsClients(settings) as clients:
            sqs = await clients.get("sqs")
            url = await queue_url(sqs, settings.sqs_acks_queue)
            marking = Marking(marketing_cloud, mongo(), KafkaMarkingOutputs())
            while True:
                reply = await sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                                  WaitTimeSeconds=settings.sqs_wait_seconds,
                                                  VisibilityTimeout=settings.sqs_visibility_timeout)
                received = reply.get("Messages", [])
                if received:
                    marked += await mark_received(sqs, url, received, marking)
                elif until_empty:
                    break
    finally:
        for unit in settings.business_units:
            await marketing_cloud(unit.tenant).aclose()
        if mongo.cache_info().currsize:
            await mongo().client.close()
        await app.producer.stop()
    print(f"marked {marked} rows")
