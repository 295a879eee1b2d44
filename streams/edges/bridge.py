"""``Bridge``: what the Kinesis and SQS ingress (and the acks queue's consumer) hand to Kafka. Bridged messages
become ``click-rows`` records (grouped by tenant, one record per partition of their sends, as the SFMC poller
sends them) and rejected messages become dead letters; each call returns only when Kafka has acknowledged
every record, so a caller may then checkpoint (Kinesis) or delete (SQS): at-least-once, and ingest drops
repeated row IDs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from streams import metrics
from streams.edges.formats import Message, Rejected, group_messages, preview
from streams.topics import Topics


class Bridge:
    """Sends onto ``topics``."""

    def __init__(self, topics: Topics) -> None:
        self.topics = topics

    async def produce(self, messages: Sequence[Message], rejected: Sequence[Rejected], source: str) -> None:
        """Send the rows of ``messages`` to ``click-rows`` (``source``: ``kinesis`` or ``sqs``) and each rejected
        message, with where it came from, to ``dead-letter``; return when Kafka acknowledged all of them."""
        read_at = time.time()
        pending = []
        for tenant, rows in group_messages(messages).items():
            metrics.rows_read.labels(tenant=tenant, source=source).inc(len(rows))
            pending += await self.topics.append_click_rows(tenant, rows, read_at=read_at, source=source)
        await asyncio.gather(*pending, self.dead_letters(rejected, source))

    async def dead_letters(self, rejected: Sequence[Rejected], stage: str) -> None:
        """Each rejected message to ``dead-letter`` (reason, where, the start of its body), acknowledged."""
        pending = [await self.topics.send_dead_letter(f"{stage}:{exc.tenant}", stage, exc.reason, exc.tenant,
                                                      {**where, "body": preview(body)})
                   for exc, body, where in rejected]
        await asyncio.gather(*pending)
