"""The shell shared by the Kinesis and SQS ingress agents: bridged messages become ``click-rows``
records (grouped by tenant and send, as the SFMC poller groups them) and rejected messages become dead
letters; ``produce`` returns only when Kafka has acknowledged every record, so a caller may then
checkpoint (Kinesis) or delete (SQS): at-least-once, and ingest drops repeated row IDs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from streams.app import app, settings
from streams.aws import AwsClients
from streams.edges import Message, Rejected, group_messages, preview
from streams.topics import append_click_rows, send_dead_letter

aws = AwsClients(settings)
"""This process's AWS clients (``await aws.get("sqs")``)."""


@app.on_before_shutdown.connect  # type: ignore[arg-type]  # faust types its receivers loosely
async def _close_aws(app_: Any, *args: Any, **kwargs: Any) -> None:
    await aws.aclose()


def tenants() -> frozenset[str]:
    return frozenset(unit.tenant for unit in settings.business_units)


async def produce(messages: Sequence[Message], rejected: Sequence[Rejected], source: str) -> None:
    """Send the rows of ``messages`` to ``click-rows`` and each rejected message (with where it came
    from) to ``dead-letter``; wait until Kafka acknowledged all of them."""
    read_at = time.time()
    pending = []
    for tenant, rows in group_messages(messages).items():
        pending += await append_click_rows(tenant, rows, read_at=read_at, source=source)
    await asyncio.gather(*pending, dead_letters(rejected, source))


async def dead_letters(rejected: Sequence[Rejected], stage: str) -> None:
    """Each rejected message to ``dead-letter`` (reason, where, the start of its body), acknowledged."""
    pending = [await send_dead_letter(f"{stage}:{exc.tenant}", stage, exc.reason, exc.tenant,
                                      {**where, "body": preview(body)})
               for exc, body, where in rejected]
    await asyncio.gather(*pending)
