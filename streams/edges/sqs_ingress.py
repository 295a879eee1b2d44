"""SQS ingress (on when ``LEADS_SQS_QUEUE_URL`` or ``LEADS_SQS_QUEUE_NAME`` is set): messages become
``click-rows``.

Every worker long-polls the queue (SQS hands each message to one consumer at a time), 10 messages a
receive, with ``LEADS_SQS_POLLERS`` pollers (a task started by ``streams.topology``). A batch is deleted only
after Kafka acknowledged its rows (and the dead letters of its poison messages); while that takes, the
messages' visibility is extended. A crash before the delete makes SQS deliver the batch again, and ingest
drops the repeated row IDs. See docs/edges.md.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from streams.edges.aws import AwsClients
from streams.edges.bridge import Bridge
from streams.edges.formats import parse_all
from streams.edges.sqs import delete_messages, keep_visible, queue_url, receive
from streams.settings import Settings
from streams.topic_records import DeadLetterStage

log = logging.getLogger(__name__)


class SqsIngress:
    """Long-polls the ingress queue of ``settings`` (``aws``' SQS client) into ``click-rows`` (``bridge``)."""

    def __init__(self, settings: Settings, aws: AwsClients, bridge: Bridge) -> None:
        self.settings = settings
        self.aws = aws
        self.bridge = bridge
        self.name_or_url = settings.sqs_queue_url or settings.sqs_queue_name or ""

    async def handle(self, sqs: Any, url: str, received: list[dict[str, Any]]) -> None:
        """Produce one received batch (SQS ``Messages``), then delete it: never the other way round."""
        messages, rejected = parse_all(((message["Body"], {"queue": url, "message_id": message.get("MessageId", "")})
                                        for message in received), self.settings.tenants)
        async with keep_visible(sqs, url, received, self.settings.sqs_visibility_timeout):
            await self.bridge.produce(messages, rejected, DeadLetterStage.SQS)
        await delete_messages(sqs, url, received)

    async def receive(self, sqs: Any, url: str) -> list[dict[str, Any]]:
        """One long poll of the queue (``streams.edges.sqs.receive``)."""
        return await receive(sqs, url, self.settings.sqs_wait_seconds, self.settings.sqs_visibility_timeout)

    async def poll_forever(self) -> None:
        """Receive and handle batches until cancelled; on a failure (SQS or Kafka unavailable) wait 1 s, doubling
        up to 60 s, and go on: the messages not deleted come back."""
        delay = 1.0
        while True:
            try:
                sqs = await self.aws.get("sqs")
                url = await queue_url(sqs, self.name_or_url)
                while True:
                    received = await self.receive(sqs, url)
                    if received:
                        await self.handle(sqs, url, received)
                    delay = 1.0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # SQS or Kafka unavailable: unacked messages come back; keep polling
                log.warning("SQS ingress from %s failed (%s); retrying in %.0fs", self.name_or_url, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)
