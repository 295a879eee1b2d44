"""SQS ack egress (on when ``LEADS_SQS_ACKS_QUEUE`` is set, e.g. ``clicks-processed``).

The acker then publishes acknowledged rows to that queue instead of calling SFMC (``AckQueue.publish``), and
``leads-sync mark-from-queue`` consumes the queue and marks the rows processed in SFMC with the acker's own
marking (``streams.marking.Marking``: 50 rows a rowset call, the 10006 fallback to ``processed-events``),
deleting each message only after its rows are marked (``AckQueue.mark_received``). Message format:
docs/edges.md.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import orjson

from streams.edges.aws import AwsClients
from streams.edges.bridge import Bridge
from streams.edges.formats import ack_messages, parse_ack_message, parse_all
from streams.edges.sqs import delete_messages, keep_visible, queue_url, receive, send_messages
from streams.marketing_cloud.records import primary_key
from streams.marking import Marking, Outputs
from streams.retry import until_done
from streams.settings import Settings
from streams.topic_records import AckBatch, DeadLetterStage
from streams.topics import Pending


def ack_bodies(batch: list[AckBatch]) -> list[bytes]:
    """The queue messages for ``batch``: rows of one tenant and status together, each row (by its full
    primary key, as the SFMC acker marks it) once."""
    grouped: dict[tuple[str, str, str], dict[tuple[str, ...], dict[str, str]]] = defaultdict(dict)
    for ack in batch:
        for keys in ack.rows:
            grouped[(ack.tenant, ack.status, ack.reason)][primary_key(keys)] = keys
    return [body for (tenant, status, reason), rows in grouped.items()
            for body in ack_messages(tenant, status, list(rows.values()), reason)]


class AckQueue:
    """The acks queue of ``settings`` (``LEADS_SQS_ACKS_QUEUE``, a name or URL), through ``aws``' SQS client."""

    def __init__(self, settings: Settings, aws: AwsClients) -> None:
        self.settings = settings
        self.aws = aws
        self.name_or_url = settings.sqs_acks_queue or ""

    async def url(self) -> tuple[Any, str]:
        """The SQS client and the queue's URL."""
        sqs = await self.aws.get("sqs")
        return sqs, await queue_url(sqs, self.name_or_url)

    async def publish(self, batch: list[AckBatch], outputs: Outputs) -> None:
        """Send the rows of ``batch`` to the acks queue; retry until SQS takes them (1 s doubling to 60 s between
        tries, holding the partition, as the SFMC acker does). The rows of a message SQS refuses for good are
        dead-lettered (``outputs``, one letter a row, as the SFMC acker dead-letters a row SFMC refuses)."""
        bodies = ack_bodies(batch)

        async def publish() -> list[tuple[bytes, str]]:
            sqs, url = await self.url()
            return await send_messages(sqs, url, bodies)

        # SQS unavailable: retry the batch (a repeated ack is harmless)
        lost = await until_done(f"publishing {len(bodies)} ack messages", publish, transient=lambda exc: True)
        messages = [(orjson.loads(body), reason) for body, reason in lost]  # {tenant, status, reason, rows}
        pending: Pending = []
        for message, reason in messages:
            for keys in message["rows"]:
                pending += await outputs.dead_letter(message["tenant"], keys,
                                                     f"SQS refused the ack message: {reason}")
        await asyncio.gather(*pending)

    async def receive(self, sqs: Any, url: str) -> list[dict[str, Any]]:
        """One long poll of the queue (``streams.edges.sqs.receive``)."""
        return await receive(sqs, url, self.settings.sqs_wait_seconds, self.settings.sqs_visibility_timeout)

    async def mark_received(self, sqs: Any, url: str, received: list[dict[str, Any]], marking: Marking,
                            bridge: Bridge) -> int:
        """Mark the rows of received ack messages in SFMC (``marking``), dead-letter the messages that do not
        read (``bridge``), then delete the messages; returns rows marked."""
        parsed, rejected = parse_all(((message["Body"], {"queue": url, "message_id": message.get("MessageId", "")})
                                      for message in received), self.settings.tenants, parse_ack_message)
        batches = [AckBatch(tenant=message.tenant, status="processed", rows=message.rows) for message in parsed]
        async with keep_visible(sqs, url, received, self.settings.sqs_visibility_timeout):
            await marking.mark(batches)
            await bridge.dead_letters(rejected, DeadLetterStage.ACKS_QUEUE)
        await delete_messages(sqs, url, received)
        return sum(len(batch.rows) for batch in batches)
