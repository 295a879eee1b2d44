"""Plain aiokafka consumers for commands that read topics outside the faust worker (summary, replay)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.app import credentials, settings


def bootstrap_servers() -> str:
    return ",".join(url.split("://", 1)[1] for url in settings.broker.split(";"))


@contextlib.asynccontextmanager
async def kafka_consumer(**options: Any) -> AsyncIterator[AIOKafkaConsumer]:
    """A started consumer with the worker's broker settings; manual assignment, no auto commit."""
    auth = credentials(settings)
    extra: dict[str, Any] = {"security_protocol": settings.broker_security_protocol}
    if auth is not None:
        extra.update(auth_options(auth))
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers(), enable_auto_commit=False, **extra,
                                **options)
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


def auth_options(auth: Any) -> dict[str, Any]:
    """aiokafka options for faust's SASL credentials or an SSL context."""
    import ssl

    if isinstance(auth, ssl.SSLContext):
        return {"ssl_context": auth}
    return {"sasl_mechanism": auth.mechanism.value if hasattr(auth.mechanism, "value") else auth.mechanism,
            "sasl_plain_username": auth.username, "sasl_plain_password": auth.password,
            "ssl_context": auth.ssl_context}


async def read_topic(topic: str) -> list[dict[str, Any]]:
    """Every value on ``topic`` from the beginning to its current end (a snapshot, for reporting)."""
    async with kafka_consumer() as consumer:
        if topic not in await consumer.topics():
            return []
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        values: list[dict[str, Any]] = []
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for messages in (await consumer.getmany(timeout_ms=1000)).values():
                values.extend(orjson.loads(message.value) for message in messages if message.value)
        return values
