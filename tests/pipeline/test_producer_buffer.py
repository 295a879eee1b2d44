"""A batch's table writes do not pile up in faust's producer buffer (issue 11): ``each_batch`` hands the next
batch over only once the buffer is back to its ``max_messages``, on a real faust app and broker."""

from __future__ import annotations

import uuid
from pathlib import Path

import faust
import pytest
from aiokafka import AIOKafkaProducer

from streams.batches import each_batch
from tests.pipeline.harness import wait_until_async
from tests.stack.test_kafka_faust import create_topics

pytestmark = pytest.mark.stack

BATCHES = 6
WRITES = 2_000
"""Table entries each batch writes: one changelog record each, queued in the producer buffer at once."""


async def test_each_batch_waits_for_the_producer_buffer(kafka_url: str, kafka_bootstrap: str,
                                                        tmp_path: Path) -> None:
    name = f"buffer-test-{uuid.uuid4().hex[:10]}"
    app = faust.App(name, broker=kafka_url, web_enabled=False, store="memory://", datadir=str(tmp_path / "faust"),
                    topic_partitions=1)
    source = app.topic(f"{name}-in", value_serializer="raw", partitions=1)
    table = app.Table(f"{name}-entries", default=int, partitions=1, use_partitioner=True)
    buffered: list[int] = []

    async def write(batch: list[bytes]) -> None:
        buffered.append(app.producer.buffer.size)  # what earlier batches left queued
        for value in batch:
            for n in range(WRITES):
                table[f"{value.decode()}-{n}"] = n

    @app.agent(source)
    async def entries(stream: faust.StreamT) -> None:
        await each_batch(stream, 1, 0.1, write)

    await create_topics(kafka_bootstrap, source.get_topic_name(), partitions=1)
    await app.start()
    try:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            for i in range(BATCHES):
                await producer.send_and_wait(source.get_topic_name(), f"b{i}".encode())
        finally:
            await producer.stop()
        await wait_until_async(lambda: len(buffered) >= BATCHES, 60, f"the agent to take all {BATCHES} batches",
                               interval=0.1, explain=lambda: f"{len(buffered)} taken, buffer sizes {buffered}")
    finally:
        await app.stop()
    assert len(table) == BATCHES * WRITES
    assert max(buffered) <= app.producer.buffer.max_messages, buffered
