"""Clicks sink: batches of click events become ``event-email-clicks`` upserts, then processed acks.

``ClicksSink`` receives what it uses (the database, the ``_id``s of references, where its outputs go), so it
runs without a worker; ``streams.topology`` has the agent that feeds it, and replay writes through it
too (without acks).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Protocol

from pymongo.asynchronous.database import AsyncDatabase

from streams.clicks import click_updates
from streams.mongo import bulk_upsert
from streams.references import DocumentIds
from streams.topic_records import ClickEvent, ClickEvents
from streams.topics import Pending

CLICKS = "event-email-clicks"
log = logging.getLogger(__name__)


Refused = tuple[str, str, ClickEvent, str]
"""A click whose document MongoDB refused: ``(tenant, send entity, click, reason)``."""


class Outputs(Protocol):
    """Where the clicks sink puts what it makes (the topics in a worker:
    ``streams.outputs.KafkaClickOutputs``); every call returns the futures that say Kafka has it."""

    async def processed(self, tenant: str, rows: Sequence[dict[str, str]]) -> Pending:
        """Rows (their key values) whose clicks MongoDB has: acked, status ``processed``."""
        ...

    async def dead_letter(self, tenant: str, send: str, click: ClickEvent, reason: str) -> Pending:
        """A click (of send entity ``send``) whose document MongoDB refused: dead-lettered, stage
        ``write-clicks``."""
        ...

    async def unwritten(self, tenant: str, rows: Sequence[dict[str, str]], at: float) -> Pending:
        """Rows (their key values) of clicks MongoDB refused, at ``at`` (epoch seconds): ingest drops their later
        readings instead of acking them as repeats."""
        ...


class ClicksSink:
    """Writes batches of ``click-events`` records into ``db``'s ``event-email-clicks``; ``job`` and ``usr`` are
    the ``_id``s ``document_ids`` resolves."""

    def __init__(self, db: AsyncDatabase, document_ids: DocumentIds, outputs: Outputs) -> None:
        self.clicks = db[CLICKS]
        self.document_ids = document_ids
        self.outputs = outputs

    async def write(self, batch: Sequence[ClickEvents]) -> None:
        """Write the batch's clicks, and only once MongoDB has them, ack their rows (and the repeats of records
        written before 2026-12-01) as processed; the rows of a click MongoDB refused are dead-lettered, not
        acked. Raises pymongo errors that are not transient (nothing is acked then)."""
        written, refused = await self.store(batch)
        if refused:
            await self._set_aside(refused)
        rows: dict[str, list[dict[str, str]]] = defaultdict(list)
        for tenant, event in written:
            rows[tenant].append(event.keys)
        for clicks in batch:
            rows[clicks.tenant].extend(clicks.repeats or ())
        for tenant, tenant_rows in rows.items():
            await self.outputs.processed(tenant, tenant_rows)

    async def store(self, batch: Sequence[ClickEvents]) -> tuple[list[tuple[str, ClickEvent]], list[Refused]]:
        """Upsert the batch's documents, acking nothing (replay uses this alone). Returns the clicks written, as
        ``(tenant, click)``, and those of the documents MongoDB refused (a document refused in the guids bulk
        gets no bots update). Raises pymongo errors that are not transient."""
        clicks = [(record.tenant, send, event) for record in batch for send, event in record.clicks()]
        ids = await self.document_ids.resolve(key for _, send, event in clicks for key in (send, event.subscriber))
        updates = click_updates(((send, event) for _, send, event in clicks), ids)
        refused = await bulk_upsert(self.clicks, [update.guids for update in updates])
        with_bots = [update for index, update in enumerate(updates) if update.bots and index not in refused]
        refused_bots = await bulk_upsert(self.clicks, [update.bots for update in with_bots if update.bots])
        reasons: dict[int, str] = {}  # position in ``clicks`` → why MongoDB refused its document
        for refused_updates, refusals in ((updates, refused), (with_bots, refused_bots)):
            for index, reason in refusals.items():
                reasons.update(dict.fromkeys(refused_updates[index].clicks, reason))
        written = [(tenant, event) for position, (tenant, _, event) in enumerate(clicks) if position not in reasons]
        return written, [(*clicks[position], reason) for position, reason in reasons.items()]

    async def dead_letter(self, refused: Sequence[Refused]) -> Pending:
        """Dead-letter each refused click; await the results to know Kafka has them."""
        pending: Pending = []
        for tenant, send, event, reason in refused:
            pending += await self.outputs.dead_letter(tenant, send, event,
                                                      f"MongoDB refused the click's document: {reason}")
        return pending

    async def _set_aside(self, refused: Sequence[Refused]) -> None:
        """Dead-letter the refused clicks and tell ingest to drop their rows' later readings instead of acking
        them as repeats."""
        log.warning("MongoDB refused %d click(s), dead-lettered (stage write-clicks), e.g. %s", len(refused),
                    refused[0][3])
        pending = await self.dead_letter(refused)
        for tenant in {tenant for tenant, *_ in refused}:
            pending += await self.outputs.unwritten(tenant, [event.keys for t, _, event, _ in refused if t == tenant],
                                                    time.time())
        await asyncio.gather(*pending)


def failing_once(sink: ClicksSink, marker: Path) -> Callable[[Sequence[ClickEvents]], Awaitable[None]]:
    """Test-only (``LEADS_TEST_FAIL_ONCE``): ``sink.write``, except that while the file ``marker`` does not
    exist, the clicks of the first half of a batch are written, then ``marker`` is created and the handler
    raises ``RuntimeError`` before any row is acked, as a sink failing part-way through its writes does: the
    worker exits, and the next one, finding the marker, reads the batch again and writes as usual."""

    async def write_half_then_fail(batch: Sequence[ClickEvents]) -> None:
        if marker.exists():
            return await sink.write(batch)
        await sink.store(batch[:len(batch) // 2])
        marker.touch()
        raise RuntimeError(f"LEADS_TEST_FAIL_ONCE: {len(batch) // 2} of a batch of {len(batch)} records written")

    return write_half_then_fail
