"""SQS ingress (on when ``LEADS_SQS_QUEUE_URL`` or ``LEADS_SQS_QUEUE_NAME`` is set): messages become
``click-rows``.

Every worker long-polls the queue (SQS hands each message to one consumer at a time), 10 messages a
receive. A batch is deleted only after Kafka acknowledged its rows (and the dead letters of its poison
messages); while that takes, the messages' visibility is extended. A crash before the delete makes SQS
deliver the batch again, and ingest drops the repeated row IDs. See docs/edges.md.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from streams.app import app, settings
from streams.aws import delete_messages, keep_visible, queue_url
from streams.bridge import aws, produce, tenants
from streams.edges import parse_all
from streams.models import DeadLetterStage

log = logging.getLogger(__name__)

sqs_status: dict[str, Any] = {"messages": 0, "rejected": 0}


async def handle(sqs: Any, url: str, received: list[dict[str, Any]]) -> None:
    """Produce one received batch, then delete it: never the other way round."""
    messages, rejected = parse_all(((message["Body"], {"queue": url, "message_id": message.get("MessageId", "")})
                                    for message in received), tenants())
    async with keep_visible(sqs, url, received, settings.sqs_visibility_timeout):
        await produce(messages, rejected, DeadLetterStage.SQS)
    await delete_messages(sqs, url, received)
    sqs_status["messages"] += len(received)
    sqs_status["rejected"] += len(rejected)


async def receive(sqs: Any, url: str) -> list[dict[str, Any]]:
    reply = await sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                      WaitTimeSeconds=settings.sqs_wait_seconds,
                                      VisibilityTimeout=settings.sqs_visibility_timeout)
    messages: list[dict[str, Any]] = reply.get("Messages", [])
    return messages


async def poll_forever() -> None:
    delay = 1.0
    name_or_url = settings.sqs_queue_url or settings.sqs_queue_name or ""
    while True:
        try:
            sqs = await aws.get("sqs")
            url = await queue_url(sqs, name_or_url)
            while True:
                received = await receive(sqs, url)
                if received:
                    await handle(sqs, url, received)
                delay = 1.0
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # SQS or Kafka unavailable: unacked messages come back; keep polling
            sqs_status["last_error"] = type(exc).__name__
            log.warning("SQS ingress from %s failed (%s); retrying in %.0fs", name_or_url, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)


if settings.sqs_queue_url or settings.sqs_queue_name:

    @app.task
    async def sqs_source() -> None:
        await asyncio.gather(*(poll_forever() for _ in range(settings.sqs_pollers)))
