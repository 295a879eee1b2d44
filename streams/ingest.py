"""Ingest: the rows of ``click-rows`` records become click events, skipped acks and dead letters, and
requests for the sends and subscribers their clicks name; repeats of rows already handled are dropped.

``Ingest`` receives what it uses (the seen-rows table, where its outputs go, the settings it reads), so it runs
without a worker; ``streams.topology`` has the agent that feeds it.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
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

    def record(self, partition: int, offset: int, handled: Mapping[str, Outcome], at: float) -> None:
        """Remember ``handled`` (row key → outcome), the rows of the record at ``offset`` of ``partition``, at
        ``at`` (epoch seconds)."""
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


@dataclass
class _Batch:
    """What a batch of ``click-rows`` records makes while its records are handled in order."""

    events: defaultdict[str, defaultdict[str, list[ClickEvent]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list)))
    """Tenant → send entity → its clicks."""
    skipped: defaultdict[tuple[str, str], list[dict[str, str]]] = field(default_factory=lambda: defaultdict(list))
    """(tenant, reason) → the key values of the rows acked as skipped for it."""
    handled: dict[str, Outcome] = field(default_factory=dict)
    """Row key → outcome, of every record handled so far: what later records of the batch find for a repeat."""
    pending: Pending = field(default_factory=list)
    """The futures of everything sent so far."""


class Ingest:
    """Handles batches of ``click-rows`` records.

    ``skip_job_ids(tenant)``: the JobIDs whose rows are acked as skipped; ``reack_after_seconds``: a row read
    again this long after it was handled is handled again (its mark was lost), instead of dropped.
    """

    def __init__(self, seen: SeenRows, outputs: Outputs, skip_job_ids: Callable[[str], frozenset[str]],
                 reack_after_seconds: float) -> None:
        self.seen = seen
        self.outputs = outputs
        self.skip_job_ids = skip_job_ids
        self.reack_after_seconds = reack_after_seconds

    async def handle(self, records: Sequence[tuple[int, int, ClickRows]], now: float) -> None:
        """Handle ``(partition, offset, record)`` of each record of a batch, in order (``now``: epoch seconds): a
        row met again in a later record of the batch is a repeat, as if read again after the first. The batch's
        clicks, skipped acks and requests are sent together, one send per tenant and kind. The rows count as
        handled (``seen.record``, one entry per record) only once Kafka has all of the batch's events, acks,
        dead letters and requests: a worker that dies before then leaves no entry, so the records, read again,
        are handled again from the start."""
        batch = _Batch()
        entries = [(partition, offset, await self._rows(record, now, batch)) for partition, offset, record in records]
        for (tenant, reason), rows in batch.skipped.items():
            metrics.rows_skipped.labels(tenant=tenant).inc(len(rows))
            batch.pending += await self.outputs.acks(tenant, "skipped", rows, reason)
        for tenant, events in batch.events.items():
            batch.pending += await self._emit(tenant, events)
        await asyncio.gather(*batch.pending)
        for partition, offset, handled in entries:
            self.seen.record(partition, offset, handled, now)

    async def _rows(self, record: ClickRows, now: float, batch: _Batch) -> dict[str, Outcome]:
        """Handle one record's rows into ``batch``; returns what became of each (row key → outcome)."""
        tenant = record.tenant
        handled: dict[str, Outcome] = {}
        if (settled := SETTLED.get(record.source)) is not None:  # rows to remember as refused or unwritten
            handled = {row_key(tenant, row): settled for row in record.rows}
            batch.handled.update(handled)
            return handled
        skip_job_ids = self.skip_job_ids(tenant)
        refused = 0
        keys = [row_key(tenant, row) for row in record.rows]
        if record.source == DEAD_LETTER_SOURCE:  # requeued: their first reading produced no event
            previously: list[tuple[Outcome, float] | None] = [None] * len(keys)
        else:
            previously = self._lookup(keys, now, batch.handled)
        for key, row, previous in zip(keys, record.rows, previously, strict=True):
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
                    batch.skipped[tenant, "a skipped row read again"].append(row_keys(row))
                    continue
                # a click read again long after: it is written again (idempotently) and acked after that
                # write, so its ack never rests on an earlier write that may not have happened
            try:
                event = parse_row(tenant, row, skip_job_ids)
            except RowRejected as exc:
                handled[key] = Outcome.SKIPPED if exc.skip else Outcome.BAD
                if exc.skip:
                    batch.skipped[tenant, exc.reason].append(row_keys(row))
                if exc.bad:
                    batch.pending += await self.outputs.dead_letter(tenant, dict(row), exc.reason)
                continue
            handled[key] = Outcome.EVENT
            batch.events[tenant][entity(tenant, "send", row["JobID"].strip())].append(event)
        metrics.refused_rows_dropped.labels(tenant=tenant).inc(refused)
        batch.handled.update(handled)
        return handled

    def _lookup(self, keys: Sequence[str], now: float,
                earlier: Mapping[str, Outcome]) -> list[tuple[Outcome, float] | None]:
        """``seen.lookup(keys, now)``, where the rows of the batch's earlier records (``earlier``) count as
        handled at ``now``."""
        found = self.seen.lookup(keys, now)
        if not earlier:
            return found
        return [(earlier[key], now) if key in earlier else previous for key, previous in zip(keys, found, strict=True)]

    async def _emit(self, tenant: str, events: dict[str, list[ClickEvent]]) -> Pending:
        """The clicks, and requests for their sends (with the ack codes seen with each) and subscribers."""
        metrics.events_ingested.labels(tenant=tenant).inc(sum(map(len, events.values())))
        sends = {send.rpartition("*")[2]: sorted({event.ack for event in clicks}) for send, clicks in events.items()}
        subscribers = {event.subscriber.rpartition("*")[2] for clicks in events.values() for event in clicks}
        return [*await self.outputs.click_events(tenant, events),
                *await self.outputs.entity_requests(tenant, "send", sends, acks=sends),
                *await self.outputs.entity_requests(tenant, "subscriber", subscribers)]
