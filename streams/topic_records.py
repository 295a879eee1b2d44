"""The records on our Kafka topics. Faust's ``json`` codec uses orjson when it is installed (it is).

Records carry batches, so faust's per-message cost is paid per page and partition, not per send or row: a
``click-rows`` record holds the rows of one poll page (or bridged message) whose sends share a partition,
and its ``click-events`` record the clicks of those rows. Both go to the partition of their sends' entities
(``streams.topics.send_partition``), where the send's table entry lives too: a row's repeats meet the
seen-rows entry of its first reading, and a send's clicks are written by one sink owner at a time.
Clicks travel as arrays (``ClickEvent``, a named tuple), not as a faust record each.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import StrEnum
from typing import Any, NamedTuple

import faust

DEAD_LETTER_SOURCE = "dead-letter"


class ClickRows(faust.Record, serializer="json"):
    """Raw click-log rows as read (every value a string), of sends that share a partition: key
    ``{tenant}:{partition}`` (records written before 2026-11-30 hold the rows of one send, key
    ``{tenant}:{JobID}``; both read the same).

    ``source`` names where they came from (``sfmc``, ``kinesis``, ``sqs``; ``dead-letter``: requeued, past the
    repeated-row check, since their first reading produced no event; ``refused`` and ``unwritten``: the keys
    of rows to remember as settled, see ``streams.tables.seen_rows``)."""

    tenant: str
    rows: list[dict[str, str]]
    read_at: float
    """Epoch seconds when the rows were read, or set aside or requeued (``refused``, ``unwritten``,
    ``dead-letter``)."""
    source: str = "sfmc"


class ClickEvent(NamedTuple):
    """One valid click. ``time`` and ``day`` are epoch seconds (``day``: midnight in America/Chicago);
    ``keys`` the row's primary-key values as read. On the wire: a JSON array in this order."""

    row_id: str
    subscriber: str
    url_id: str
    ack: str
    time: float
    day: float
    bot: bool
    keys: dict[str, str]


class ClickEvents(faust.Record, serializer="json"):
    """The clicks of one ``click-rows`` record, by send entity: ``sends`` maps a send to its clicks (each a
    ``ClickEvent`` array). Key ``{tenant}:{partition}``. ``repeats`` (records written before 2026-12-01 only)
    are the keys of rows read again long after their click was recorded, acked once more by the clicks sink;
    such a row now comes again as its click.

    Records written before 2026-11-30 hold one send: ``send`` and ``events`` (each a ``ClickEvent`` object)
    instead of ``sends``; ``clicks()`` reads both, so replay rebuilds from either."""

    tenant: str
    sends: dict[str, list[list[Any]]] | None = None
    repeats: list[dict[str, str]] | None = None
    send: str | None = None
    events: list[dict[str, Any]] | None = None

    def clicks(self) -> Iterator[tuple[str, ClickEvent]]:
        """``(send entity, click)`` for every click, in order."""
        if self.sends is not None:
            for send, events in self.sends.items():
                for values in events:
                    yield send, ClickEvent(*values)
        elif self.send is not None:
            for fields in self.events or ():
                yield self.send, ClickEvent(**{name: fields[name] for name in ClickEvent._fields})


class EntityRequest(faust.Record, serializer="json"):
    """Ask a resolver for entities of one kind; ``acks`` (sends only) maps a send id to acks seen with it."""

    tenant: str
    ids: list[str]
    acks: dict[str, list[str]] | None = None
    attempt: int = 0
    """How many times the ids were asked before: 0 for a first request, more for a due retry."""
    refetch: bool = False
    """Fetch the ids now, even when their table entries are fresh or a retry is pending (a requeued dead
    letter)."""


class EntitySnapshot(faust.Record, serializer="json"):
    """An entity as SFMC returned it (``data``, JSON values), published on ``entity-changes``."""

    entity: str
    tenant: str
    kind: str
    data: dict[str, Any]
    retrieved_at: float
    """When SFMC returned it, epoch seconds."""
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
    ``leads-sync replay-dead-letters`` (``streams.replay.requeue_dead_letters``) one way to requeue it. A
    letter that cannot be requeued yet (its tenant not configured, its body still unreadable) is reported as
    skipped and stays due: each later run tries it again, and requeues it once it can be."""

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
    """A row not marked processed: SFMC refused to mark it (an error other than 10006, or 10006 and MongoDB
    refused to record it in ``processed-events``), or SQS refused the acks-queue message that carried it.
    Source: ``{"keys": {ID, JobID, SubscriberID, EventDate, IsUnique, ListID}}`` (the row's key values as
    read). Requeued to ``acks``."""
    ACKS_QUEUE = "acks-queue"
    """A message on the acks queue that ``leads-sync mark-from-queue`` could not read. Source:
    ``{"queue": URL, "message_id": id, "body": the first 2,000 characters}``. Requeued to ``acks`` when
    the body now reads as an ack message (say, its tenant was configured since)."""
    WRITE_CLICKS = "write-clicks"
    """A click whose ``event-email-clicks`` document MongoDB refused (say, a legacy document whose ``guids`` is
    not an array); its row stays unprocessed. Source: ``{"send": the send entity, "event": the ``ClickEvent``
    as an object}``. Requeued to ``click-events``."""
    WRITE_MODELS = "write-models"
    """A model document MongoDB refused. Source: ``{"entity": "mc.{tenant}.{kind}*{id}"}``. Requeued to the
    kind's resolver, which fetches and publishes it again."""
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
