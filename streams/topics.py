"""The topics of the topology (DESIGN.md). Keys are strings; values are records of ``streams.models``."""

from __future__ import annotations

from aiokafka.partitioner import murmur2

from streams.app import app, settings
from streams.models import AckBatch, ClickEvents, ClickRows, DeadLetter, EntityRequest, EntitySnapshot

click_rows = app.topic("click-rows", key_type=str, value_type=ClickRows)
click_events = app.topic("click-events", key_type=str, value_type=ClickEvents)
send_requests = app.topic("send-requests", key_type=str, value_type=EntityRequest)
subscriber_requests = app.topic("subscriber-requests", key_type=str, value_type=EntityRequest)
email_requests = app.topic("email-requests", key_type=str, value_type=EntityRequest)
# Folders are few and a folder's path needs its parents: one partition keeps them all on one worker.
category_requests = app.topic("category-requests", key_type=str, value_type=EntityRequest, partitions=1)
# The models sink joins a send with its email's category: one partition keeps that join local.
entity_changes = app.topic("entity-changes", key_type=str, value_type=EntitySnapshot, partitions=1)
acks = app.topic("acks", key_type=str, value_type=AckBatch)
dead_letter = app.topic("dead-letter", key_type=str, value_type=DeadLetter)


def partition_of(key: str, partitions: int = settings.topic_partitions) -> int:
    """The partition Kafka's default partitioner gives ``key``, so batched requests go where a table
    keyed the same way (``use_partitioner=True``) keeps that key."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % partitions
