"""The topics of the topology (DESIGN.md). Keys are strings; values are records of ``streams.models``."""

from __future__ import annotations

from typing import Any

import faust
from aiokafka.partitioner import murmur2

from streams.app import app, settings
from streams.models import AckBatch, ClickEvents, ClickRows, DeadLetter, EntityRequest, EntitySnapshot


def _topic(name: str, **options: Any) -> faust.TopicT:
    # internal: the worker creates our topics (with their partition counts) before subscribing
    return app.topic(settings.topic_prefix + name, key_type=str, internal=True, **options)


click_rows = _topic("click-rows", value_type=ClickRows)
click_events = _topic("click-events", value_type=ClickEvents)
send_requests = _topic("send-requests", value_type=EntityRequest)
subscriber_requests = _topic("subscriber-requests", value_type=EntityRequest)
email_requests = _topic("email-requests", value_type=EntityRequest)
# Folders are few and a folder's path needs its parents: one partition keeps them all on one worker.
category_requests = _topic("category-requests", value_type=EntityRequest, partitions=1)
# The models sink joins a send with its email's category: one partition keeps that join local.
entity_changes = _topic("entity-changes", value_type=EntitySnapshot, partitions=1)
acks = _topic("acks", value_type=AckBatch)
dead_letter = _topic("dead-letter", value_type=DeadLetter)


def partition_of(key: str, partitions: int = settings.topic_partitions) -> int:
    """The partition Kafka's default partitioner gives ``key``, so batched requests go where a table
    keyed the same way (``use_partitioner=True``) keeps that key."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions


@app.task
async def declare_outputs() -> None:
    """Create the topics that no agent of ours consumes (faust declares the others)."""
    await dead_letter.maybe_declare()
