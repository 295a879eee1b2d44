"""Ingest: the rows of a ``click-rows`` record become click events, skipped acks and dead letters, and
requests for the sends and subscribers their clicks name; repeats of rows already handled are dropped.

``Ingest`` receives what it uses (the seen-rows table, where its outputs go, the settings it reads), so it runs
without a worker; ``streams.topology`` has the agent that feeds it.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from streams import metrics
from streams.clicks import RowRejected, parse_row
from streams.entity_ids import EntityType, entity
from streams.marketing_cloud.records import row_keys
from streams.tables.seen_rows import SETTLED, Outcome, row_key
from streams.topic_records import DEAD_LETTER_SOURCE, ClickEvent, ClickRows
from streams.topics import Pending


class SeenRows(Protocol):
    """What ingest asks of the seen-rows table (``streams.tables.seen_rows.SeenRows``)."""

    def lookup(self, keys: Sequence[str], now: float) -> list[tuple[Outcome, float] | None]:
        """``(outcome, handled at)`` of each row of ``keys`` (epoch seconds, like ``now``), in their order; None
        for a row not remembered."""
        ...

    def record(self, handled: Mapping[str, Outcome], at: float) -> None:
        """Remember ``handled`` (row key → outcome) at ``at`` (epoch seconds), while its record is handled."""
        ...


class Outputs(Protocol):
    """Where ingest puts what it makes (the topics in a worker: ``streams.outputs.KafkaIngestOutputs``); every
    call returns the futures that say Kafka has it."""

    async def click_events(self, tenant: str, clicks: Mapping[str, Sequence[ClickEvent]]) -> Pending:
        """Clicks (by send entity) on ``click-events``."""
        ...

    async def acks(self, tenant: str, status: str, rows: Sequence[dict[str, str]], reason: str) -> Pending:
        """Rows (their key values) to mark with ``status`` (ingest's: ``skipped``), and why."""
        ...

    async def dead_letter(self, tenant: str, row: dict[str, Any], reason: str) -> Pending:
        """A row that is bad input (``RowRejected.bad``): dead-lettered, stage ``ingest``."""
        ...

    async def entity_requests(self, tenant: str, kind: EntityType, ids: Iterable[str],
                              acks: dict[str, list[str]] | None = None) -> Pending:
        """Requests for the ``kind`` entities ``ids`` of ``tenant`` (``acks``: send id → ack codes seen with it)."""
        ...


class Ingest:
    """Handles ``click-rows`` records one at a time.

    ``skip_job_ids(tenant)``: the JobIDs whose rows are acked as skipped; ``reack_after_seconds``: a row read
    again this long after it was handled is handled again (its mark was lost), instead of dropped.
    """

    def __init__(self, seen: SeenRows, outputs: Outputs, skip_job_ids: Callable[[str], frozenset[str]],
                 reack_after_seconds: float) -> None:
        self.seen = seen
        self.outputs = outputs
        self.skip_job_ids = skip_job_ids
        self.reack_after_seconds = reack_after_seconds

    async def handle(self, batch: ClickRows, now: float) -> None:
        """Handle one record (``now``: epoch seconds). Its rows count as handled (``seen.record``) only once
        Kafka has their events, acks, dead letters and requests: a worker that dies before then leaves no
        entry, so the record, read again, is handled again from the start."""
        tenant = batch.tenant
        if (settled := SETTLED.get(batch.source)) is not None:  # rows to remember as refused or unwritten
            self.seen.record({row_key(tenant, row): settled for row in batch.rows}, now)
            return
        skip_job_ids = self.skip_job_ids(tenant)
        requeued = batch.source == DEAD_LETTER_SOURCE  # their first reading produced no event
        events: dict[str, list[ClickEvent]] = defaultdict(list)  # by send entity
        skipped: dict[str, list[dict[str, str]]] = defaultdict(list)  # by reason
        handled: dict[str, Outcome] = {}
        pending: Pending = []
        refused = 0
        keys = [row_key(tenant, row) for row in batch.rows]
        previously = [None] * len(keys) if requeued else self.seen.lookup(keys, now)
        for key, row, previous in zip(keys, batch.rows, previously, strict=True):
            if key in handled:  # the same row twice in one record
                continue
            if previous is not None:
                outcome, handled_at = previous
                if outcome is Outcome.REFUSED:
                    refused += 1
                    continue
                if outcome is Outcome.BAD or now - handled_at < self.reack_after_seconds:
                    continue
                if outcome is Outcome.SKIPPED:
                    handled[key] = outcome
                    skipped["a skipped row read again"].append(row_keys(row))
                    continue
                # a click read again long after: it is written again (idempotently) and acked after that
                # write, so its ack never rests on an earlier write that may not have happened
            try:
                event = parse_row(tenant, row, skip_job_ids)
            except RowRejected as exc:
                handled[key] = Outcome.SKIPPED if exc.skip else Outcome.BAD
                if exc.skip:
                    skipped[exc.reason].append(row_keys(row))
                if exc.bad:
                    pending += await self.outputs.dead_letter(tenant, dict(row), exc.reason)
                continue
            handled[key] = Outcome.EVENT
            events[entity(tenant, "send", row["JobID"].strip())].append(event)
        metrics.refused_rows_dropped.labels(tenant=tenant).inc(refused)
        for reason, rows in skipped.items():
            metrics.rows_skipped.labels(tenant=tenant).inc(len(rows))
            pending += await self.outputs.acks(tenant, "skipped", rows, reason)
        if events:
            pending += await self._emit(tenant, events)
        await asyncio.gather(*pending)
        self.seen.record(handled, now)

    async def _emit(self, tenant: str, events: dict[str, list[ClickEvent]]) -> Pending:
        """The clicks, and requests for their sends (with the ack codes seen with each) and subscribers."""
        metrics.events_ingested.labels(tenant=tenant).inc(sum(map(len, events.values())))
        sends = {send.rpartition("*")[2]: sorted({event.ack for event in clicks}) for send, clicks in events.items()}
        subscribers = {event.subscriber.rpartition("*")[2] for clicks in events.values() for event in clicks}
        return [*await self.outputs.click_events(tenant, events),
                *await self.outputs.entity_requests(tenant, "send", sends, acks=sends),
                *await self.outputs.entity_requests(tenant, "subscriber", subscribers)]
