"""Operator commands: ``leads-sync summary`` counts what the pipeline has read, written and acked."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.app import app, settings
from streams.resources import mongo
from streams.topics import acks, click_events, click_rows, dead_letter

COLLECTIONS = ("identities", "email-categories", "email-deployments", "email-sends", "email-send-urls",
               "event-email-clicks", "processed-events")


def _bootstrap() -> str:
    return ",".join(url.split("://", 1)[1] for url in settings.broker.split(";"))


async def read_topic(topic: str) -> list[dict[str, Any]]:
    """Every value on ``topic`` from the beginning to its current end (a snapshot, for reporting)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=_bootstrap(), enable_auto_commit=False,
                                security_protocol=settings.broker_security_protocol)
    await consumer.start()
    try:
        if topic not in await consumer.topics():
            return []
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        values: list[dict[str, Any]] = []
        while any(await consumer.position(tp) < end for tp, end in ends.items()):
            for messages in (await consumer.getmany(timeout_ms=1000)).values():
                values.extend(orjson.loads(message.value) for message in messages if message.value)
        return values
    finally:
        await consumer.stop()


async def pipeline_summary() -> dict[str, Any]:
    rows = await read_topic(click_rows.get_topic_name())
    events = await read_topic(click_events.get_topic_name())
    ack_batches = await read_topic(acks.get_topic_name())
    letters = await read_topic(dead_letter.get_topic_name())
    acked: Counter[str] = Counter()
    for batch in ack_batches:
        acked[batch["status"]] += len(batch["rows"])
    db = mongo()
    return {
        "rows read": sum(len(batch["rows"]) for batch in rows),
        "click events": sum(len(batch["events"]) for batch in events),
        "acks": dict(acked),
        "dead letters": dict(Counter(letter["stage"] for letter in letters)),
        "documents": {name: await db[name].count_documents({}) for name in COLLECTIONS},
    }


@app.command()
async def summary(self: Any) -> None:
    """Print rows read, events, acks, dead letters and documents per collection (JSON)."""
    print(orjson.dumps(await pipeline_summary(), option=orjson.OPT_INDENT_2).decode())
