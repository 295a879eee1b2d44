"""The records on our Kafka topics. Faust's ``json`` codec uses orjson when it is installed (it is).

Records carry batches (the rows of one send from one page, the clicks of one send) so that faust's
per-message cost is paid per batch, not per row; keys keep a send's rows and clicks on one partition.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import faust

DEAD_LETTER_SOURCE = "dead-letter"


class ClickRows(faust.Record, serializer="json"):
    """Raw click-log rows as read (every value a string), all of one send: key ``{tenant}:{JobID}``.

    ``source`` names where they came from (``sfmc``, ``kinesis``, ``sqs``); rows requeued from the
    dead-letter topic skip the repeated-row check, since their first reading produced no event."""

    tenant: str
    rows: list[dict[str, str]]
    read_at: float
    source: str = "sfmc"


class ClickEvent(faust.Record, serializer="json"):
    """One valid click. ``time`` and ``day`` are epoch seconds (``day``: midnight in America/Chicago)."""

    row_id: str
    subscriber: str
    url_id: str
    ack: str
    time: float
    day: float
    bot: bool
    keys: dict[str, str]


class ClickEvents(faust.Record, serializer="json"):
    """The clicks of one send from one batch of rows: key = the send's entity. ``repeats`` are the keys of
    rows read again long after their click was recorded, to acknowledge once more (no new click)."""

    tenant: str
    send: str
    events: list[ClickEvent]
    repeats: list[dict[str, str]] | None = None


class EntityRequest(faust.Record, serializer="json"):
    """Ask a resolver for entities of one kind; ``acks`` (sends only) maps a send id to acks seen with it."""

    tenant: str
    ids: list[str]
    acks: dict[str, list[str]] | None = None
    attempt: int = 0


class EntitySnapshot(faust.Record, serializer="json"):
    """An entity as SFMC returned it (``data``, JSON values), published on ``entity-changes``."""

    entity: str
    tenant: str
    kind: str
    data: dict[str, Any]
    retrieved_at: float
    acks: list[str] | None = None


class EntityChanges(faust.Record, serializer="json"):
    """The snapshots of one fetch (or one republish), in order: one ``entity-changes`` record for many."""

    snapshots: list[EntitySnapshot]


class AckBatch(faust.Record, serializer="json"):
    """Rows to mark processed in SFMC (their key values as read); ``status`` is processed or skipped."""

    tenant: str
    status: str
    rows: list[dict[str, str]]
    reason: str = ""


class DeadLetterStage(StrEnum):
    """Where a dead letter was written. Each stage has one ``source`` shape, and
    ``leads-sync replay-dead-letters`` (``streams.replay.requeue_dead_letters``) one way to requeue it."""

    INGEST = "ingest"
    """A click row ingest rejected (a missing or malformed field). Source: the row as read, every value a
    string. Requeued to ``click-rows``, past the seen-rows check."""
    # resolve-{kind}: an entity SFMC did not return after every attempt. Source:
    # {"entity": "mc.{tenant}.{kind}*{id}"}. Requeued to the kind's resolver.
    RESOLVE_SEND = "resolve-send"
    RESOLVE_SUBSCRIBER = "resolve-subscriber"
    RESOLVE_EMAIL = "resolve-email"
    RESOLVE_CATEGORY = "resolve-category"
    ACK = "ack"
    """A row not marked processed: SFMC refused to mark it (an error other than 10006), or SQS refused the
    acks-queue message that carried it. Source: ``{"keys": {ID, JobID, SubscriberID, EventDate, IsUnique,
    ListID}}`` (the row's key values as read). Requeued to ``acks``."""
    ACKS_QUEUE = "acks-queue"
    """A message on the acks queue that ``leads-sync mark-from-queue`` could not read. Source:
    ``{"queue": URL, "message_id": id, "body": the first 2,000 characters}``. Requeued to ``acks`` when
    the body now reads as an ack message (say, its tenant was configured since)."""
    KINESIS = "kinesis"
    """A poison Kinesis record. Source: ``{"stream", "shard", "sequence", "body": the first 2,000
    characters}``. Requeued to ``click-rows`` when the body now reads as a message."""
    SQS = "sqs"
    """A poison message of the SQS ingress queue. Source: ``{"queue": URL, "message_id": id, "body": the
    first 2,000 characters}``. Requeued to ``click-rows`` when the body now reads as a message."""


class DeadLetter(faust.Record, serializer="json"):
    """Something that could not be processed: ``stage`` (a ``DeadLetterStage`` value) says where, ``reason``
    why, ``source`` what (its shape is the stage's); ``at`` is epoch seconds."""

    stage: str
    reason: str
    tenant: str
    source: dict[str, Any]
    at: float
