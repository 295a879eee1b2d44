"""The ingest agent: each ``click-rows`` record through ``streams.ingest.Ingest``, whose outputs go to this
worker's topics."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from streams.app import app, settings
from streams.batches import each_event
from streams.entities import EntityType
from streams.ingest import Ingest
from streams.models import ClickEvent, DeadLetterStage
from streams.tables.seen_rows import seen_rows
from streams.topics import Pending, click_rows, request_entities, send_acks, send_click_events, send_dead_letter


class KafkaOutputs:
    """``streams.ingest.Outputs`` on the topics: ``click-events``, ``acks``, ``dead-letter`` (stage
    ``ingest``, keyed ``{tenant}:{row ID}``) and the send and subscriber request topics."""

    async def click_events(self, tenant: str, clicks: Mapping[str, Sequence[ClickEvent]]) -> Pending:
        return await send_click_events(tenant, clicks)

    async def acks(self, tenant: str, status: str, rows: Sequence[dict[str, str]], reason: str) -> Pending:
        return await send_acks(tenant, status, rows, reason)

    async def dead_letter(self, tenant: str, row: dict[str, Any], reason: str) -> Pending:
        return [await send_dead_letter(f"{tenant}:{row.get('ID', '')}", DeadLetterStage.INGEST, reason, tenant, row)]

    async def entity_requests(self, tenant: str, kind: EntityType, ids: Iterable[str],
                              acks: dict[str, list[str]] | None = None) -> Pending:
        return await request_entities(tenant, kind, ids, acks=acks)


ingester = Ingest(seen_rows, KafkaOutputs(), lambda tenant: settings.unit(tenant).skip_job_ids,
                  settings.reack_after_seconds)


@app.agent(click_rows)
async def ingest(stream):
    # one record at a time: the seen-rows table is written on the record's own partition
    await each_event(stream, lambda record: ingester.handle(record, time.time()))
