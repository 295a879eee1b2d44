"""Plain aiokafka clients for commands that read topics outside the faust worker (summary, replay)."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.app import credentials, settings


def connection_options() -> dict[str, Any]:
    """Bootstrap servers, security protocol and credentials, as the worker uses them."""
    options: dict[str, Any] = {
        "bootstrap_servers": ",".join(url.split("://", 1)[1] for url in settings.broker.split(";")),
        "security_protocol": settings.broker_security_protocol,
    }
    auth = credentials(settings)
    if isinstance(auth, ssl.SSLContext):
        options["ssl_context"] = auth
    elif auth is not None:
        options.update(sasl_mechanism=getattr(auth.mechanism, "value", auth.mechanism),
                       sasl_plain_username=auth.username, sasl_plain_password=auth.password,
                       ssl_context=auth.ssl_context)
    return options


@contextlib.asynccontextmanager
async def kafka_consumer(**options: Any) -> AsyncIterator[AIOKafkaConsumer]:
    """A started consumer with the worker's broker settings; for manual assignment, no auto commit."""
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **connection_options(), **options)
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def topic_partitions(topic: str) -> list[TopicPartition]:
    """The partitions of ``topic``; none when it does not exist."""
    admin = AIOKafkaAdminClient(**connection_options())
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(TopicPartition(topic, p["partition"]) for p in described["partitions"])


async def read_topic(topic: str) -> list[dict[str, Any]]:
    """Every value on ``topic`` from the beginning to its current end (a snapshot, for reporting)."""
    partitions = await topic_partitions(topic)
    if not partitions:
        return []
    async with kafka_consumer() as consumer:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        values: list[dict[str, Any]] = []
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for messages in (await consumer.getmany(timeout_ms=1000)).values():
                values.extend(orjson.loads(message.value) for message in messages if message.value)
        return values
