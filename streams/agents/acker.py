"""Acker: marks acknowledged rows processed in SFMC (``streams.marking``), or hands them to the SQS acks
queue when ``LEADS_SQS_ACKS_QUEUE`` is set (``streams.agents.sqs_acks``); a failed batch is read again."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

from streams.agents.sqs_acks import KafkaMarkingOutputs, publish_acks
from streams.app import app, settings
from streams.batches import each_batch
from streams.marking import Marking
from streams.models import AckBatch
from streams.resources import marketing_cloud, mongo
from streams.topics import acks


@app.agent(acks)
async def acker(stream):
    outputs = KafkaMarkingOutputs()
    mark: Callable[[list[AckBatch]], Awaitable[None]]
    if settings.sqs_acks_queue:  # acks go to SQS; ``leads-sync mark-from-queue`` marks them in SFMC
        mark = partial(publish_acks, outputs=outputs)
    else:
        mark = Marking(marketing_cloud, mongo(), outputs).mark
    await each_batch(stream, 20, 1.0, mark)
