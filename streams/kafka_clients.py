"""The broker's credentials for faust (``credentials``), and plain aiokafka clients with the worker's connection
settings for commands that read topics outside the faust worker (summary, replay, requeue)."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import Any

import faust
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from streams.settings import Settings


def credentials(settings: Settings) -> faust.SASLCredentials | ssl.SSLContext | None:
    """Kafka SASL/TLS for production brokers (MSK, Confluent); None for a local PLAINTEXT broker."""
    protocol = settings.broker_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = ssl.create_default_context() if protocol.endswith("SSL") else None
    if protocol == "SSL":
        return context
    password = settings.broker_password.get_secret_value() if settings.broker_password else ""
    return faust.SASLCredentials(
        username=settings.broker_username or "",
        password=password,
        mechanism=settings.broker_sasl_mechanism,
        ssl_context=context,
    )


def connection_options(settings: Settings) -> dict[str, Any]:
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
async def kafka_consumer(settings: Settings, **options: Any) -> AsyncIterator[AIOKafkaConsumer]:
    """A started consumer with the worker's broker settings (``options``: aiokafka's); for manual assignment, no
    auto commit."""
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **connection_options(settings), **options)
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def topic_partitions(settings: Settings, topic: str) -> list[TopicPartition]:
    """The partitions of ``topic``, sorted; none when it does not exist."""
    admin = AIOKafkaAdminClient(**connection_options(settings))
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return sorted(TopicPartition(topic, p["partition"]) for p in described["partitions"])


async def read_topic(settings: Settings, topic: str) -> list[dict[str, Any]]:
    """Every value on ``topic`` (decoded JSON) from the beginning to its current end (a snapshot, for
    reporting)."""
    partitions = await topic_partitions(settings, topic)
    if not partitions:
        return []
    async with kafka_consumer(settings) as consumer:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        values: list[dict[str, Any]] = []
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for messages in (await consumer.getmany(timeout_ms=1000)).values():
                values.extend(orjson.loads(message.value) for message in messages if message.value)
        return values
