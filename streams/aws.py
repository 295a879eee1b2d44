"""AWS clients (aiobotocore) for the edges: one client per service, opened on first use, closed on exit.

Credentials come from the settings when given (``LEADS_AWS_ACCESS_KEY_ID`` and the secret, which is
only ever unwrapped here), otherwise from botocore's usual chain (environment, profile, instance role).
``LEADS_AWS_ENDPOINT_URL`` points every service at a local stand-in (moto, LocalStack).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session

from streams.settings import Settings

log = logging.getLogger(__name__)
SQS_BATCH = 10


def client_options(settings: Settings) -> dict[str, Any]:
    """Arguments for ``session.create_client`` (contains the secret key: never log it)."""
    options: dict[str, Any] = {
        "region_name": settings.aws_region,
        "config": AioConfig(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=10,
                            read_timeout=max(60, settings.sqs_wait_seconds + 10)),
    }
    if settings.aws_endpoint_url:
        options["endpoint_url"] = str(settings.aws_endpoint_url).rstrip("/")
    if settings.aws_access_key_id:
        options["aws_access_key_id"] = settings.aws_access_key_id
    if settings.aws_secret_access_key:
        options["aws_secret_access_key"] = settings.aws_secret_access_key.get_secret_value()
    return options


class AwsClients:
    """``await clients.get("sqs")``; ``async with AwsClients(settings) as clients`` closes them."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._session = get_session()
        self._stack = contextlib.AsyncExitStack()
        self._clients: dict[str, Any] = {}

    async def get(self, service: str) -> Any:
        if service not in self._clients:
            creator = self._session.create_client(service, **client_options(self._settings))
            self._clients[service] = await self._stack.enter_async_context(creator)
        return self._clients[service]

    async def aclose(self) -> None:
        self._clients.clear()
        await self._stack.aclose()

    async def __aenter__(self) -> AwsClients:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def queue_url(sqs: Any, name_or_url: str) -> str:
    """A queue URL from a URL (returned as is) or a queue name (looked up)."""
    if name_or_url.startswith(("http://", "https://")):
        return name_or_url
    reply = await sqs.get_queue_url(QueueName=name_or_url)
    return str(reply["QueueUrl"])


@contextlib.asynccontextmanager
async def keep_visible(sqs: Any, url: str, messages: Sequence[dict[str, Any]], timeout: int) -> AsyncIterator[None]:
    """While the block runs, push the messages' visibility timeout out again every half timeout, so a
    slow step (Kafka or SFMC unavailable) does not hand them to another consumer meanwhile."""

    async def extend() -> None:
        while True:
            await asyncio.sleep(timeout / 2)
            for start in range(0, len(messages), SQS_BATCH):
                entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": timeout}
                           for i, m in enumerate(messages[start : start + SQS_BATCH])]
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


async def delete_messages(sqs: Any, url: str, messages: Sequence[dict[str, Any]]) -> int:
    """DeleteMessageBatch, 10 a call; returns how many failed (they come back and are handled again)."""
    failed = 0
    for start in range(0, len(messages), SQS_BATCH):
        entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                   for i, m in enumerate(messages[start : start + SQS_BATCH])]
        reply = await sqs.delete_message_batch(QueueUrl=url, Entries=entries)
        for failure in reply.get("Failed", []):
            failed += 1
            log.warning("deleting SQS message failed (%s): it will be delivered again", failure.get("Code"))
    return failed


async def send_messages(sqs: Any, url: str, bodies: Sequence[bytes], attempts: int = 5) -> list[tuple[bytes, str]]:
    """SendMessageBatch, 10 entries a call; failed entries are retried (with backoff) up to ``attempts``
    times, except sender faults, which cannot succeed. Returns the bodies that never went, with why."""
    lost: list[tuple[bytes, str]] = []
    for start in range(0, len(bodies), SQS_BATCH):
        pending = dict(enumerate(bodies[start : start + SQS_BATCH]))
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
