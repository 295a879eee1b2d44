"""SQS calls shared by ingress (``streams.edges.sqs_ingress``) and ack egress (``streams.edges.sqs_egress``):
queue URLs, visibility kept while a batch is handled, batch deletes and sends (SQS takes 10 entries a call)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from streams.chunking import chunks

log = logging.getLogger(__name__)
SQS_BATCH = 10
"""Entries per SQS batch call (the most SQS takes)."""


async def queue_url(sqs: Any, name_or_url: str) -> str:
    """A queue URL from a URL (returned as is) or a queue name (looked up)."""
    if name_or_url.startswith(("http://", "https://")):
        return name_or_url
    reply = await sqs.get_queue_url(QueueName=name_or_url)
    return str(reply["QueueUrl"])


@contextlib.asynccontextmanager
async def keep_visible(sqs: Any, url: str, messages: Sequence[dict[str, Any]], timeout: int) -> AsyncIterator[None]:
    """While the block runs, push the messages' visibility timeout out to ``timeout`` seconds again every
    ``timeout / 2`` seconds, so a slow step (Kafka or SFMC unavailable) does not hand them to another consumer
    meanwhile; a failed extension is logged, not raised."""

    async def extend() -> None:
        while True:
            await asyncio.sleep(timeout / 2)
            for batch in chunks(messages, SQS_BATCH):
                entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": timeout}
                           for i, m in enumerate(batch)]
                try:
                    await sqs.change_message_visibility_batch(QueueUrl=url, Entries=entries)
                except Exception as exc:  # best effort: at worst the message is delivered again
                    log.warning("extending the visibility of %d messages failed: %s", len(entries), exc)

    task = asyncio.create_task(extend())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def receive(sqs: Any, url: str, wait_seconds: int, visibility_timeout: int) -> list[dict[str, Any]]:
    """One long poll of up to ``wait_seconds`` seconds: up to 10 messages (SQS ``Messages``), hidden from other
    consumers for ``visibility_timeout`` seconds; none when the wait ends first."""
    reply = await sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=SQS_BATCH, WaitTimeSeconds=wait_seconds,
                                      VisibilityTimeout=visibility_timeout)
    messages: list[dict[str, Any]] = reply.get("Messages", [])
    return messages


async def delete_messages(sqs: Any, url: str, messages: Sequence[dict[str, Any]]) -> int:
    """DeleteMessageBatch, 10 a call; returns how many failed (they come back and are handled again)."""
    failed = 0
    for batch in chunks(messages, SQS_BATCH):
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)]
        reply = await sqs.delete_message_batch(QueueUrl=url, Entries=entries)
        for failure in reply.get("Failed", []):
            failed += 1
            log.warning("deleting SQS message failed (%s): it will be delivered again", failure.get("Code"))
    return failed


async def send_messages(sqs: Any, url: str, bodies: Sequence[bytes], attempts: int = 5) -> list[tuple[bytes, str]]:
    """SendMessageBatch, 10 entries a call; failed entries are sent again (after 0.5 s, doubling to 10 s) for
    ``attempts`` sends in all, except sender faults, which cannot succeed. Returns the bodies that never went,
    with why (``{Code}: {Message}``); raises what the SQS client raises."""
    lost: list[tuple[bytes, str]] = []
    for batch in chunks(bodies, SQS_BATCH):
        pending = dict(enumerate(batch))
        delay = 0.5
        for attempt in range(attempts):
            reply = await sqs.send_message_batch(QueueUrl=url, Entries=[
                {"Id": str(i), "MessageBody": body.decode()} for i, body in pending.items()])
            for entry in reply.get("Successful", []):
                pending.pop(int(entry["Id"]), None)
            for failure in reply.get("Failed", []):
                if failure.get("SenderFault") or attempt == attempts - 1:
                    body = pending.pop(int(failure["Id"]), None)
                    if body is not None:
                        lost.append((body, f"{failure.get('Code')}: {failure.get('Message', '')}"))
            if not pending:
                break
            log.warning("%d of a batch of SQS messages failed; retrying in %.1fs", len(pending), delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)
    return lost
