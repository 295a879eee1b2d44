"""Each stage's outputs on a worker's topics: the ``Outputs`` protocol of ingest, the sinks, the resolvers and
marking, each implemented on ``streams.topics.Topics``. What a stage's dead letters look like (stage, key,
source) is decided here, so one place shows them all."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import faust

from streams.batches import producer_ebb
from streams.entity_ids import EntityType
from streams.tables.seen_rows import REFUSED_SOURCE, UNWRITTEN_SOURCE
from streams.topic_records import ClickEvent, DeadLetterStage, EntitySnapshot
from streams.topics import Pending, Topics


class KafkaIngestOutputs:
    """``streams.ingest.Outputs``: ``click-events``, ``acks``, ``dead-letter`` (stage ``ingest``, keyed
    ``{tenant}:{row ID}``, source: the row) and the send and subscriber request topics."""

    def __init__(self, topics: Topics) -> None:
        self.topics = topics

    async def click_events(self, tenant: str, clicks: Mapping[str, Sequence[ClickEvent]]) -> Pending:
        """``click-events``: a ``ClickEvents`` per partition of the sends, key ``{tenant}:{partition}``."""
        return await self.topics.send_click_events(tenant, clicks)

    async def acks(self, tenant: str, status: str, rows: Sequence[dict[str, str]], reason: str) -> Pending:
        """``acks``: ``AckBatch``es of ``status`` and ``reason``, key the tenant."""
        return await self.topics.send_acks(tenant, status, rows, reason)

    async def dead_letter(self, tenant: str, row: dict[str, Any], reason: str) -> Pending:
        """``dead-letter``: a ``DeadLetter``, stage ``ingest``, key ``{tenant}:{row ID}``, source the row."""
        return [await self.topics.send_dead_letter(f"{tenant}:{row.get('ID', '')}", DeadLetterStage.INGEST, reason,
                                                   tenant, row)]

    async def entity_requests(self, tenant: str, kind: EntityType, ids: Iterable[str],
                              acks: dict[str, list[str]] | None = None) -> Pending:
        """``{kind}-requests``: ``EntityRequest``s carrying ``acks``, key ``{tenant}:{kind}:{partition}``."""
        return await self.topics.request_entities(tenant, kind, ids, acks=acks)


class KafkaClickOutputs:
    """``streams.clicks_sink.Outputs``: ``acks``, ``dead-letter`` (stage ``write-clicks``, keyed
    ``{tenant}:{row ID}``, source ``{"send": send entity, "event": the click}``) and ``click-rows`` (source
    ``unwritten``)."""

    def __init__(self, topics: Topics) -> None:
        self.topics = topics

    async def processed(self, tenant: str, rows: Sequence[dict[str, str]]) -> Pending:
        """``acks``: ``AckBatch``es of status ``processed``, key the tenant."""
        return await self.topics.send_acks(tenant, "processed", rows)

    async def dead_letter(self, tenant: str, send: str, click: ClickEvent, reason: str) -> Pending:
        """``dead-letter``: a ``DeadLetter``, stage ``write-clicks``, key ``{tenant}:{row ID}``, source: send, click."""
        return [await self.topics.send_dead_letter(f"{tenant}:{click.row_id}", DeadLetterStage.WRITE_CLICKS, reason,
                                                   tenant, {"send": send, "event": click._asdict()})]

    async def unwritten(self, tenant: str, rows: Sequence[dict[str, str]], at: float) -> Pending:
        """``click-rows``: ``ClickRows`` of source ``unwritten`` read at ``at`` (epoch seconds), key
        ``{tenant}:{partition}``."""
        return await self.topics.append_click_rows(tenant, rows, read_at=at, source=UNWRITTEN_SOURCE)


class KafkaModelOutputs:
    """``streams.models_sink.Outputs``: ``dead-letter``, stage ``write-models``, keyed by the entity, source
    ``{"entity": entity}``."""

    def __init__(self, topics: Topics) -> None:
        self.topics = topics

    async def dead_letter(self, snapshot: EntitySnapshot, reason: str) -> Pending:
        """``dead-letter``: a ``DeadLetter``, stage ``write-models``, key the entity, source ``{"entity": entity}``."""
        return [await self.topics.send_dead_letter(snapshot.entity, DeadLetterStage.WRITE_MODELS, reason,
                                                   snapshot.tenant, {"entity": snapshot.entity})]


class KafkaResolverOutputs:
    """``streams.resolvers.Outputs``: ``entity-changes``, the request topics, ``dead-letter`` (stage
    ``resolve-{kind}``, keyed by the entity, source ``{"entity": entity}``), and the room in ``app``'s producer
    buffer."""

    def __init__(self, app: faust.App, topics: Topics) -> None:
        self.app = app
        self.topics = topics

    async def snapshots(self, snapshots: Sequence[EntitySnapshot]) -> Pending:
        """``entity-changes``: ``EntityChanges`` of up to 100 snapshots each, key the first one's kind."""
        return await self.topics.publish_snapshots(snapshots)

    async def entity_requests(self, tenant: str, kind: EntityType, ids: Iterable[int | str],
                              attempt: int = 0) -> Pending:
        """``{kind}-requests``: ``EntityRequest``s carrying ``attempt``, key ``{tenant}:{kind}:{partition}``."""
        return await self.topics.request_entities(tenant, kind, ids, attempt=attempt)

    async def dead_letter(self, tenant: str, kind: EntityType, key: str, reason: str) -> Pending:
        """``dead-letter``: a ``DeadLetter``, stage ``resolve-{kind}``, key ``key``, source ``{"entity": key}``."""
        return [await self.topics.send_dead_letter(key, DeadLetterStage(f"resolve-{kind}"), reason, tenant,
                                                   {"entity": key})]

    async def room(self) -> None:
        """Sends nothing: ``producer_ebb`` on ``app`` (``RuntimeError`` when its producer buffer crashed)."""
        await producer_ebb(self.app)


class KafkaMarkingOutputs:
    """``streams.marking.Outputs``, for the acker and ``mark-from-queue``: ``dead-letter`` (stage ``ack``, keyed
    ``{tenant}:{row ID}``, source ``{"keys": its key values}``) and ``click-rows`` (source ``refused``: one
    record per partition, where the rows' readings go, whose seen-rows table then drops their later readings)."""

    def __init__(self, topics: Topics) -> None:
        self.topics = topics

    async def dead_letter(self, tenant: str, keys: dict[str, str], reason: str) -> Pending:
        """``dead-letter``: a ``DeadLetter``, stage ``ack``, key ``{tenant}:{row ID}``, source ``{"keys": keys}``."""
        return [await self.topics.send_dead_letter(f"{tenant}:{keys.get('ID', '')}", DeadLetterStage.ACK, reason,
                                                   tenant, {"keys": keys})]

    async def refused(self, tenant: str, rows: list[dict[str, str]], at: float) -> Pending:
        """``click-rows``: ``ClickRows`` of source ``refused`` read at ``at`` (epoch seconds), key
        ``{tenant}:{partition}``."""
        return await self.topics.append_click_rows(tenant, rows, read_at=at, source=REFUSED_SOURCE)
