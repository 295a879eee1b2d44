"""Click-log rows already handled, and what became of each.

Rows stay in the click-log DE until marked processed, so every poll reads them again; a repeat must not
become a new click event. A repeat read more than ``reack_after_seconds`` after the row was handled (its
mark was lost, or the DE was reset) is handled again, so it is not read forever: a click becomes its event
again (written again, idempotently, before its ack), a skipped row is acked again. A record's rows are
recorded only once Kafka has what handling them produced (``streams.ingest``): an entry never stands
for output a dying worker lost. A row SFMC
refused to mark (10006) stays Ready for good but counts as processed (SPEC 2): the acker says so with a
``click-rows`` record of source ``refused``, and the row's later readings are dropped, never acked again.
A row whose click document MongoDB refused was dead-lettered (stage ``write-clicks``) and is not processed:
the clicks sink says so with a record of source ``unwritten``, and its later readings are dropped as bad
rows' are, until ``leads-sync replay-dead-letters`` writes the click. A row is remembered for
``seen_rows_ttl_seconds`` after it was last handled (or refused, or left unwritten).

The table holds one entry per ``click-rows`` record (its rows' outcomes), written while handling the record
(one record at a time, on the partition of the rows' sends), so a row's repeats find it and the
changelog carries one record per ``click-rows`` record, not one per row. Lookups go through an index by row
in a local RocksDB database (``streams.tables.row_index.RowIndex``), rebuilt from the table after each
recovery. The changelog expires by time (``cleanup.policy=delete``); each worker drops expired entries from
its table, and RocksDB drops them from the index when it compacts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import IntEnum
from pathlib import Path
from typing import Any

import faust
from faust.types import TP

from streams.marketing_cloud.records import primary_key
from streams.tables.row_index import RowIndex

REFUSED_SOURCE = "refused"
"""``ClickRows.source`` of the rows SFMC refused to mark (their key values), sent by the acker."""
UNWRITTEN_SOURCE = "unwritten"
"""``ClickRows.source`` of the rows whose click MongoDB refused (their key values), sent by the clicks sink."""


class Outcome(IntEnum):
    """What became of a row: a click event, a skipped ack, a dead letter, or, after its event or skip, a
    mark SFMC refused with 10006."""

    EVENT = 1
    SKIPPED = 2
    BAD = 3
    REFUSED = 4


SETTLED: dict[str, Outcome] = {REFUSED_SOURCE: Outcome.REFUSED, UNWRITTEN_SOURCE: Outcome.BAD}
"""The outcome of the rows of a ``click-rows`` record of each settling source."""


class SeenRows(faust.Table):
    """Record key → ``{"at": handled at, "rows": {row key: outcome}}``, with an index row key → (outcome, at)."""

    _changelog_compacting = False
    _changelog_deleting = True

    def __init__(self, *args: Any, ttl: float, index: RowIndex, **kwargs: Any) -> None:
        """faust's table arguments, and: ``ttl``, seconds a handled row is remembered; ``index``, the rows'
        index (this table's alone)."""
        super().__init__(*args, extra_topic_configs={"retention.ms": str(int(ttl * 1000))}, **kwargs)
        self.ttl = ttl
        self._index = index

    def lookup(self, keys: Sequence[str], now: float) -> list[tuple[Outcome, float] | None]:
        """For each row of ``keys``, in their order: what became of it and when (epoch seconds), if it was
        handled within the TTL before ``now``; else None."""
        ttl = self.ttl
        return [None if found is None or now - found[1] >= ttl else (Outcome(found[0]), found[1])
                for found in self._index.get(keys)]

    def record(self, handled: Mapping[str, Outcome], at: float) -> None:
        """Remember ``handled`` (row key → outcome), the rows of the ``click-rows`` record being handled, at
        ``at`` (epoch seconds): one changelog record, keyed by the record's position (``{partition}:{offset}``),
        so handling it again overwrites. Raises ``RuntimeError`` when no record is being handled (no current
        event)."""
        event = faust.current_event()
        if event is None:
            raise RuntimeError("rows are recorded while a click-rows record is handled")
        if not handled:
            return
        self[f"{event.message.partition}:{event.message.offset}"] = {"at": at, "rows": dict(handled)}
        self._index.put(handled.items(), at)

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        """After faust's recovery, rebuild the index from the table's entries, one at a time (a row's latest
        handling wins)."""
        await super().on_recovery_completed(active_tps, standby_tps)
        self._index.close()  # opened empty again by the first keep_latest
        for entry in self.data.values():
            self._index.keep_latest(list(entry["rows"].items()), entry["at"])

    def expire(self, now: float) -> None:
        """Drop the table's entries handled ``ttl`` seconds or more before ``now`` (epoch seconds) from local
        state; the changelog and the index expire by themselves."""
        old = [key for key, entry in self.data.items() if now - entry["at"] >= self.ttl]
        for key in old:
            del self.data[key]


def seen_rows_table(app: faust.App, ttl: float, index_path: Path) -> SeenRows:
    """The ``seen-rows`` table on ``app`` (its changelog kept ``ttl`` seconds, its index's database at
    ``index_path``), added to the app's tables."""
    table = SeenRows(app, name="seen-rows", beacon=app.tables.beacon, key_type=str, ttl=ttl,
                     index=RowIndex(index_path, ttl),
                     help="click-log rows handled, per click-rows record: outcome and when")
    app.tables.add(table)
    return table


def row_key(tenant: str, row: Mapping[str, Any]) -> str:
    """``{tenant}:{primary key values joined by |}``: a row's key in the seen-rows index and the poller's."""
    return tenant + ":" + "|".join(primary_key(row))
