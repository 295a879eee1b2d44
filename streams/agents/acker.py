"""Acker: marks acknowledged rows processed in SFMC (``streams.marking``), or hands them to the SQS acks
queue when ``LEADS_SQS_ACKS_QUEUE`` is set (``streams.agents.sqs_acks``); a failed batch is read again."""

from __future__ import annotations

from streams.agents.sqs_acks import publish_acks
from streams.app import app, settings
from streams.batches import each_batch
from streams.marking import mark_in_sfmc
from streams.models import AckBatch
from streams.topics import acks


@app.agent(acks)
async def acker(stream):
    await each_batch(stream, 20, 1.0, mark)


async def mark(batch: list[AckBatch]) -> None:
    if settings.sqs_acks_queue:  # acks go to SQS; ``leads-sync mark-from-queue`` marks them in SFMC
        await publish_acks(batch)
    else:
        await mark_in_sfmc(batch)
