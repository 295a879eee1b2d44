"""What became of click-log rows, by row key, in a local RocksDB database (``RowIndex``).

The seen-rows table and each BU's poller look rows up one page or record at a time; at hundreds of thousands
of rows a Python dict of them was tens of MB per index (about 120 bytes a row). In RocksDB an index holds at
most ``MEMTABLE_BYTES`` x 2 of memtables and ``BLOCK_CACHE_BYTES`` of block cache, whatever its rows, and the
rest is on disk. It keeps small budgets of its own rather than the tables' shared ones: charged to those, a
worker spent about 18% more CPU per row at 60,000 rows, on its own it did not (BENCHMARKS.md, 2026-12-02).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, cast

import rocksdict

MEMTABLE_BYTES = 4 * 1024**2
"""Bytes of one memtable of an index (RocksDB keeps two: one filling, one flushing)."""
BLOCK_CACHE_BYTES = 4 * 1024**2
"""Bytes of an index's block cache."""


def _code(key: str) -> bytes:
    """A row key as the index holds it: its ``hash()`` in 8 bytes."""
    return hash(key).to_bytes(8, "little", signed=True)


class RowIndex:
    """Row key → ``(outcome, epoch seconds)``: outcome 0-7, and when it was written (to the millisecond).

    The database at ``path`` belongs to this process: it is opened empty on first use (what an earlier process
    left there is destroyed; the owner rebuilds what it needs) and written without a write-ahead log. RocksDB
    drops an entry ``ttl`` seconds or more after it was written, when it compacts; until then a lookup may
    still find it, so a caller compares the time itself. A key is held by its ``hash()`` (this process's) in 8
    bytes and its value in 8 (milliseconds and 3 bits of outcome); two keys of one hash (odds about rows² / 2⁶⁴)
    would share an entry. Values are not compressed (8 bytes of hash and 8 of time do not compress)."""

    def __init__(self, path: Path, ttl: float) -> None:
        self.path = path
        self.ttl = ttl
        self._db: rocksdict.Rdict | None = None

    def _open(self) -> rocksdict.Rdict:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            rocksdict.Rdict.destroy(str(self.path))
            options = rocksdict.Options(raw_mode=True)
            options.create_if_missing(True)
            options.set_write_buffer_size(MEMTABLE_BYTES)
            options.set_max_write_buffer_number(2)
            options.set_compression_type(rocksdict.DBCompressionType.none())
            table = rocksdict.BlockBasedOptions()
            table.set_bloom_filter(10, block_based=True)  # most rows looked up are new: a miss costs no read
            table.set_block_cache(rocksdict.Cache(BLOCK_CACHE_BYTES))
            options.set_block_based_table_factory(table)
            # RocksDB takes a TTL of 0 for none: the shortest it keeps is a second
            db = rocksdict.Rdict(str(self.path), options=options,
                                 access_type=rocksdict.AccessType.with_ttl(max(1, math.ceil(self.ttl))))
            writes = rocksdict.WriteOptions()
            writes.disable_wal = True  # type: ignore[method-assign, assignment]  # a property, not the stubs' method
            db.set_write_options(writes)
            self._db = db
        return self._db

    def get(self, keys: Sequence[str]) -> list[tuple[int, float] | None]:
        """``(outcome, at)`` of each row of ``keys``, in their order; None for a row not remembered."""
        if not keys:
            return []
        codes: list[Any] = [_code(key) for key in keys]  # (the stubs' list type is invariant)
        found = cast(list[bytes | None], self._open().get(codes))  # a list of keys gets a list
        return [None if value is None else (value[0] & 7, (int.from_bytes(value, "little") >> 3) / 1000)
                for value in found]

    def put(self, outcomes: Iterable[tuple[str, int]], at: float) -> None:
        """Remember each row's outcome (key, 0-7) at ``at`` (epoch seconds), in one write."""
        batch = rocksdict.WriteBatch(raw_mode=True)
        millis = int(at * 1000) << 3
        for key, outcome in outcomes:
            batch.put(_code(key), (millis | outcome).to_bytes(8, "little"))
        if len(batch):
            self._open().write(batch)

    def keep_latest(self, outcomes: Sequence[tuple[str, int]], at: float) -> None:
        """Like ``put``, but a row already remembered as written after ``at`` keeps that (a rebuild that meets
        a row's handlings in any order ends with its latest; times are kept to the millisecond, so of two
        handlings within one millisecond the one met last wins)."""
        found = self.get([key for key, _ in outcomes])
        self.put((row for row, seen in zip(outcomes, found, strict=True) if seen is None or seen[1] <= at), at)

    def close(self) -> None:
        """Close the database, if open: every row is forgotten, for the next use opens it empty."""
        if self._db is not None:
            self._db.close()
            self._db = None
