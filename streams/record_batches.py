"""Records sent to Kafka a batch at a time: one aiokafka record batch per partition (more where one fills up).

faust's ``Topic.send`` and its tables' ``table[key] = value`` make a future message per record, aiokafka makes a
future per record on top, and each delivery is handled in a callback of its own. Where many records go out
together (a table's changelog entries), ``send_batches`` hands aiokafka whole batches instead (its
``create_batch`` and ``send_batch``): one future per batch (``bench/table_writes.py`` measures the difference on
a table). A batch waits for the one before it on its partition to be sent, so records met one at a time are
better sent with faust's ``Topic.send``. The records go out outside any transaction: the app's processing
guarantee is at-least-once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

from aiokafka.errors import KafkaError
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.structs import RecordMetadata
from faust.exceptions import ProducerSendError
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import AppT

Record = tuple[int, bytes | None, bytes | None]
"""A record to send: its partition, key and value (None: a tombstone), serialized."""


@dataclass(frozen=True)
class SentBatch:
    """A batch handed to aiokafka: its ``partition``, how many ``records`` it holds, and ``delivered``, whose
    metadata's offset is the batch's first record's once Kafka has it (it raises aiokafka's ``KafkaError`` when
    Kafka refused the batch)."""

    partition: int
    records: int
    delivered: asyncio.Future[RecordMetadata]


async def send_batches(app: AppT, topic: str, records: Iterable[Record]) -> list[SentBatch]:
    """Hand ``records`` to ``app``'s producer for ``topic`` as record batches, in their order within each partition;
    returns once aiokafka holds them all (await each ``delivered`` to know Kafka has it). Timestamps are the
    current time; the producer is started if it was not. Raises faust's ``ProducerSendError`` when the producer
    cannot take a batch (closed, failed, or full past its request timeout; the batches before it
    may still reach Kafka)."""
    # started on first use, as faust's own sends do (commands such as mark-from-queue send before anything else)
    producer = cast(faust_aiokafka.Producer, await app.maybe_start_producer())._ensure_producer()  # aiokafka's
    builders: dict[int, list[BatchBuilder]] = {}
    for partition, key, value in records:
        batches = builders.get(partition)
        if batches is None:
            batches = builders[partition] = [producer.create_batch()]
        while batches[-1].append(key=key, value=value, timestamp=None) is None:  # full: an empty one takes any
            batches.append(producer.create_batch())
    sent = []
    try:
        for partition, batches in builders.items():
            for builder in batches:
                builder.close()  # complete: sent without waiting out the producer's linger
                sent.append(SentBatch(partition, builder.record_count(),
                                      await producer.send_batch(builder, topic, partition=partition)))
    except KafkaError as exc:  # as faust's own send reports it
        raise ProducerSendError(f"Error while sending: {exc!r}") from exc
    return sent
