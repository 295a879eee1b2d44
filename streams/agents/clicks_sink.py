"""The clicks sink agent: batches of ``click-events`` records through ``streams.clicks_sink.ClicksSink``, whose
outputs go to this worker's topics."""

from __future__ import annotations

from collections.abc import Sequence

from streams.adoption import check_adopted
from streams.app import app, settings
from streams.batches import each_batch
from streams.clicks_sink import ClicksSink, failing_once
from streams.models import ClickEvent, DeadLetterStage
from streams.mongo import ensure_indexes
from streams.resources import document_ids, mongo
from streams.tables.seen_rows import UNWRITTEN_SOURCE
from streams.topics import Pending, append_click_rows, click_events, send_acks, send_dead_letter


class KafkaClickOutputs:
    """``streams.clicks_sink.Outputs`` on the topics: ``acks``, ``dead-letter`` (stage ``write-clicks``, keyed
    ``{tenant}:{row ID}``, source ``{"send": send entity, "event": the click}``) and ``click-rows`` (source
    ``unwritten``)."""

    async def processed(self, tenant: str, rows: Sequence[dict[str, str]]) -> Pending:
        return await send_acks(tenant, "processed", rows)

    async def dead_letter(self, tenant: str, send: str, click: ClickEvent, reason: str) -> Pending:
        return [await send_dead_letter(f"{tenant}:{click.row_id}", DeadLetterStage.WRITE_CLICKS, reason, tenant,
                                       {"send": send, "event": click._asdict()})]

    async def unwritten(self, tenant: str, rows: Sequence[dict[str, str]], at: float) -> Pending:
        return await append_click_rows(tenant, rows, read_at=at, source=UNWRITTEN_SOURCE)


@app.agent(click_events)
async def clicks_sink(stream):
    db = mongo()
    await check_adopted(db, settings.legacy_tenant)
    await ensure_indexes(db)
    sink = ClicksSink(db, document_ids(), KafkaClickOutputs())
    marker = settings.test_fail_once
    await each_batch(stream, settings.sink_batch, settings.sink_within,
                     sink.write if marker is None else failing_once(sink, marker))
