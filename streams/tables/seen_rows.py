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
changelog carries one record per ``click-rows`` record, not one per row. Lookups go through an index by row,
rebuilt from the table after each recovery (``RowIndex``: about 120 bytes a row, at most
``seen_rows_index_size`` rows, the oldest forgotten first; a forgotten row read again is handled again, which
writes its click again, idempotently, or dead-letters a bad row again). The changelog expires by time
(``cleanup.policy=delete``); each worker drops expired entries from memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import IntEnum
from itertools import islice
from typing import Any

import faust
from faust.types import TP

from streams.marketing_cloud.records import primary_key

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


class RowIndex:
    """Row key → ``(outcome, epoch seconds)`` for at most ``capacity`` rows, the latest written kept and the
    oldest forgotten first. A key is held by its ``hash()`` (this process's; the index lives in one process)
    and the pair packed in one int (milliseconds, 3 bits of outcome): about 120 bytes a row, a third of a
    ``str`` key and a tuple. Two keys of one hash (odds about rows² / 2⁶⁴) would share an entry."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._rows: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, key: str) -> tuple[int, float] | None:
        """``(outcome, at)`` of the row, or None when it is not remembered."""
        packed = self._rows.get(hash(key))
        return None if packed is None else (packed & 7, (packed >> 3) / 1000)

    def put(self, key: str, outcome: int, at: float) -> None:
        """Remember the row's outcome (0-7) at ``at`` (epoch seconds); past the capacity by a tenth, forget
        the oldest down to it (in one pass, so the cost per row stays constant)."""
        rows = self._rows
        code = hash(key)
        rows.pop(code, None)  # a row written again becomes the newest
        rows[code] = int(at * 1000) << 3 | outcome
        if len(rows) > self.capacity + self.capacity // 10:
            self._rows = dict(islice(rows.items(), len(rows) - self.capacity, None))

    def forget_until(self, at: float) -> None:
        """Forget the rows written at or before ``at`` (epoch seconds)."""
        cutoff = int(at * 1000) << 3 | 7
        self._rows = {code: packed for code, packed in self._rows.items() if packed > cutoff}

    def clear(self) -> None:
        """Forget every row."""
        self._rows = {}


SETTLED: dict[str, Outcome] = {REFUSED_SOURCE: Outcome.REFUSED, UNWRITTEN_SOURCE: Outcome.BAD}
"""The outcome of the rows of a ``click-rows`` record of each settling source."""


class SeenRows(faust.Table):
    """Record key → ``{"at": handled at, "rows": {row key: outcome}}``, with an index row key → (outcome, at)."""

    _changelog_compacting = False
    _changelog_deleting = True

    def __init__(self, *args: Any, ttl: float, index_size: int, **kwargs: Any) -> None:
        """faust's table arguments, and: ``ttl``, seconds a handled row is remembered; ``index_size``, rows the
        in-memory index holds at most."""
        super().__init__(*args, extra_topic_configs={"retention.ms": str(int(ttl * 1000))}, **kwargs)
        self.ttl = ttl
        self._index = RowIndex(index_size)

    def lookup(self, key: str, now: float) -> tuple[Outcome, float] | None:
        """What became of the row and when (epoch seconds), if it was handled within the TTL and is still
        in the index."""
        found = self._index.get(key)
        if found is None or now - found[1] >= self.ttl:
            return None
        return Outcome(found[0]), found[1]

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
        self._add(handled.items(), at)

    def _add(self, outcomes: Iterable[tuple[str, int]], at: float) -> None:
        put = self._index.put
        for key, outcome in outcomes:
            put(key, outcome, at)

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        """After faust's recovery, rebuild the index from the table's entries, oldest first: a row's latest
        handling wins."""
        await super().on_recovery_completed(active_tps, standby_tps)
        self._index.clear()
        for entry in sorted(self.data.values(), key=lambda entry: entry["at"]):  # the latest handling wins
            self._add(entry["rows"].items(), entry["at"])

    def expire(self, now: float) -> None:
        """Forget what was handled ``ttl`` seconds or more before ``now`` (epoch seconds), in memory; the
        changelog expires by itself."""
        old = [key for key, entry in self.data.items() if now - entry["at"] >= self.ttl]
        for key in old:
            del self.data[key]
        self._index.forget_until(now - self.ttl)


def seen_rows_table(app: faust.App, ttl: float, index_size: int) -> SeenRows:
    """The ``seen-rows`` table on ``app`` (its changelog kept ``ttl`` seconds), added to the app's tables."""
    table = SeenRows(app, name="seen-rows", beacon=app.tables.beacon, key_type=str, ttl=ttl, index_size=index_size,
                     help="click-log rows handled, per click-rows record: outcome and when")
    app.tables.add(table)
    return table


def row_key(tenant: str, row: Mapping[str, Any]) -> str:
    """``{tenant}:{primary key values joined by |}``: a row's key in the seen-rows index and the poller's."""
    return tenant + ":" + "|".join(primary_key(row))
