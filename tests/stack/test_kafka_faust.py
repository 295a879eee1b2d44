"""A real faust agent on the stack's Kafka broker, writing to the stack's MongoDB-protocol server."""

from __future__ import annotations

import asyncio
import json
import uuid

import faust
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

pytestmark = pytest.mark.stack

COUNT = 25


async def create_topics(bootstrap: str, *names: str, partitions: int = 2) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1) for name in names])
    finally:
        await admin.close()


async def test_faust_agent_kafka_to_mongo(kafka_url, kafka_bootstrap, mongo_db, tmp_path):
    name = f"stack-test-{uuid.uuid4().hex[:10]}"
    app = faust.App(
        name,
        broker=kafka_url,
        web_enabled=False,
        store="memory://",
        datadir=str(tmp_path / "faust"),
        topic_partitions=2,
        broker_commit_every=1,
    )
    source = app.topic(f"{name}-in", value_serializer="json", partitions=2)
    sink = app.topic(f"{name}-out", value_serializer="json", partitions=2)
    collection = mongo_db["clicks"]

    @app.agent(source)
    async def record(stream):
        async for event in stream:
            await collection.update_one({"_id": event["id"]}, {"$addToSet": {"guids": event["guid"]}}, upsert=True)
            await sink.send(key=event["id"], value={"id": event["id"], "stored": True})

    await create_topics(kafka_bootstrap, source.get_topic_name(), sink.get_topic_name())
    await app.start()
    try:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            for i in range(COUNT):
                body = json.dumps({"id": f"doc{i % 5}", "guid": f"g{i}"}).encode()
                await producer.send_and_wait(source.get_topic_name(), body, key=f"doc{i % 5}".encode())
        finally:
            await producer.stop()

        consumer = AIOKafkaConsumer(
            sink.get_topic_name(), bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            acks = []
            async with asyncio.timeout(60):
                while len(acks) < COUNT:
                    batch = await consumer.getmany(timeout_ms=500)
                    acks += [json.loads(msg.value) for msgs in batch.values() for msg in msgs]
        finally:
            await consumer.stop()
    finally:
        await app.stop()

    assert all(ack["stored"] for ack in acks)
    docs = {doc["_id"]: sorted(doc["guids"]) async for doc in collection.find()}
    assert docs == {f"doc{k}": sorted(f"g{i}" for i in range(k, COUNT, 5)) for k in range(5)}
