"""Marking rows processed in SFMC: 50 rows a rowset request, and never dropping one.

A row SFMC refuses with errorcode 10006 (its keys match no primary key) is recorded in the
``processed-events`` collection instead, and so counts as processed (SPEC 2); it stays Ready in SFMC, so
ingest is told (``Outputs.refused``) to drop its later readings instead of acking it again. One that MongoDB
refuses to record there is not processed: it is dead-lettered (stage ``ack``, with MongoDB's reason), as a
row SFMC refused with another code, and ingest is not told. Transient SFMC failures are retried with backoff
until SFMC answers.

``Marking`` receives what it uses (the SFMC client of each tenant, the database, where its outputs go), so it
runs without a worker; the acker agent and ``leads-sync mark-from-queue`` (the SQS ack egress) feed it.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol

from pymongo.asynchronous.database import AsyncDatabase

from streams import metrics
from streams.chunking import chunks
from streams.documents import processed_event_update
from streams.marketing_cloud import AuthError, MarketingCloudError, RowFailure, TransientError
from streams.marketing_cloud.records import primary_key
from streams.marketing_cloud.rest import KEY_MISMATCH
from streams.mongo import bulk_upsert
from streams.retry import until_done
from streams.topic_records import AckBatch
from streams.topics import Pending

ROWSET_ROWS = 50
PROCESSED_EVENTS = "processed-events"


class Client(Protocol):
    """What marking asks of a business unit's SFMC client (``streams.marketing_cloud.MarketingCloudClient``)."""

    async def mark_processed(self, rows: Sequence[Mapping[str, str]]) -> list[RowFailure]:
        """Mark ``rows`` processed; return those SFMC refused. SFMC failures raise ``MarketingCloudError``s
        (marking retries ``TransientError`` and ``AuthError``)."""
        ...


class Outputs(Protocol):
    """Where marking puts the rows it could not mark (the topics in a worker:
    ``streams.outputs.KafkaMarkingOutputs``); every call returns the futures that say Kafka has it."""

    async def dead_letter(self, tenant: str, keys: dict[str, str], reason: str) -> Pending:
        """A row (its key values) that could not be marked: dead-lettered, stage ``ack``."""
        ...

    async def refused(self, tenant: str, rows: list[dict[str, str]], at: float) -> Pending:
        """Rows (their key values) SFMC refused to mark and ``processed-events`` records, at ``at`` (epoch
        seconds): ingest drops their later readings instead of acking them again."""
        ...


class Marking:
    """Marks acked rows processed in SFMC.

    ``client(tenant)``: the tenant's SFMC client; ``db``: the database whose ``processed-events`` records the
    rows SFMC refuses with 10006; ``outputs``: where the rows not marked go.
    """

    def __init__(self, client: Callable[[str], Client], db: AsyncDatabase, outputs: Outputs) -> None:
        self.client = client
        self.processed_events = db[PROCESSED_EVENTS]
        self.outputs = outputs

    async def mark(self, batch: Sequence[AckBatch]) -> None:
        """Mark the rows of ``batch``, each row (by its ``primary_key``) once, the tenants at once. Returns when
        every row is marked, recorded in ``processed-events`` or dead-lettered (Kafka has the letters).

        Raises pymongo errors that are not transient, and errors of the SFMC client that are neither transient
        nor a ``MarketingCloudError`` (whose rows are dead-lettered)."""
        rows: dict[str, dict[tuple[str, ...], dict[str, str]]] = defaultdict(dict)
        for ack in batch:
            for keys in ack.rows:
                rows[ack.tenant][primary_key(keys)] = keys  # the same row acked twice is marked once
        await asyncio.gather(*(self._mark_tenant(tenant, list(by_key.values())) for tenant, by_key in rows.items()))

    async def _mark_tenant(self, tenant: str, rows: list[dict[str, str]]) -> None:
        results = await asyncio.gather(*(self._mark_until_done(tenant, list(chunk))
                                         for chunk in chunks(rows, ROWSET_ROWS)))
        failures = [failure for result in results for failure in result]
        refused = [failure.keys for failure in failures if failure.code == KEY_MISMATCH]
        metrics.rows_marked.labels(tenant=tenant).inc(len(rows) - len(failures))
        now = time.time()
        unrecorded = await bulk_upsert(self.processed_events,
                                       [processed_event_update(keys["ID"], now) for keys in refused])
        recorded = [keys for index, keys in enumerate(refused) if index not in unrecorded]
        metrics.key_mismatch_fallbacks.labels(tenant=tenant).inc(len(recorded))
        await self.outputs.refused(tenant, recorded, now)
        letters = [(failure.keys, f"SFMC refused to mark the row ({failure.code}): {failure.message}")
                   for failure in failures if failure.code != KEY_MISMATCH]
        letters += [(refused[index], f"SFMC refused to mark the row ({KEY_MISMATCH}) and MongoDB refused to record "
                                     f"it in {PROCESSED_EVENTS}: {reason}") for index, reason in unrecorded.items()]
        pending: Pending = []
        for keys, reason in letters:
            pending += await self.outputs.dead_letter(tenant, keys, reason)
        await asyncio.gather(*pending)

    async def _mark_until_done(self, tenant: str, rows: list[dict[str, str]]) -> list[RowFailure]:
        def marking() -> Awaitable[list[RowFailure]]:
            marked = self.client(tenant).mark_processed(rows)
            return metrics.timed(metrics.sfmc_calls, marked, call="rowset", tenant=tenant)

        try:
            return await until_done(f"marking {len(rows)} rows of {tenant}", marking,
                                    transient=lambda exc: isinstance(exc, TransientError | AuthError))
        except MarketingCloudError as exc:  # SFMC refused the request itself: dead-letter its rows
            code = getattr(exc, "errorcode", None) or 0
            return [RowFailure(keys, code, str(exc)) for keys in rows]
