"""The tables' RocksDB store: faust's (``faust.stores.rocksdb``, rocksdict driver), each key kept in its
changelog partition's database.

faust's RocksDB store keeps one database per changelog partition under ``LEADS_DATA_DIR`` (with the offset of
the last changelog record it holds, so a restart reads only the changelog past it) and puts a key in the
database of the partition of the event being handled. Our tables break that assumption: the entity tables
send a key's changelog record to the key's own partition (``KeyedTable.partition_for_key``) and are written
from batches (``streams.batches``), where no event is current; the Kinesis checkpoints from a timer. So this
store puts a key where its changelog record goes: a keyed table's partition for the key, partition 0 of a
one-partition table, else the current event's partition; reads of the first two go to that one database.

RocksDB's memory is bounded for the whole process, however many partition databases it opens (a worker
opens one per table partition it holds, active or standby: 30 to 50 with 4 partitions): every database
charges its memtables to one write buffer manager (``LEADS_TABLE_WRITE_BUFFER_MB``) and reads through one
block cache (``LEADS_TABLE_BLOCK_CACHE_MB``), as RocksDB advises for many databases in one process, instead of faust's
defaults of 3 x 64 MB memtables and a 2 GB block cache per database.
"""

from __future__ import annotations

from typing import Any

import rocksdict
from faust.stores import STORES
from faust.stores.rocksdb import RocksDBOptions
from faust.stores.rocksdb import Store as RocksDBStore
from faust.streams import current_event

from streams.settings import Settings
from streams.tables.keyed import KeyedTable

DEFAULT_WRITE_BUFFER_MB = Settings.model_fields["table_write_buffer_mb"].default
DEFAULT_BLOCK_CACHE_MB = Settings.model_fields["table_block_cache_mb"].default
"""The settings' defaults, for a store opened before ``set_memory_budgets`` (an app not made by ``create_app``)."""
OPTIONS: dict[str, Any] = {
    "write_buffer_size": 4 * 1024**2,
    "max_write_buffer_number": 2,
}
"""RocksDB options of each partition database (a table's own ``options`` win)."""
_budgets: dict[str, Any] = {}
"""``write_buffers``: charged with the memtables of all the process's partition databases together;
``block_cache``: the block cache they share. Set by ``set_memory_budgets``."""


def set_memory_budgets(write_buffer_mb: int, block_cache_mb: int) -> None:
    """The process's RocksDB budgets, in MiB (``LEADS_TABLE_WRITE_BUFFER_MB``, ``LEADS_TABLE_BLOCK_CACHE_MB``), for
    the partition databases opened from now on (``streams.app.create_app`` sets them)."""
    _budgets["write_buffers"] = rocksdict.WriteBufferManager(write_buffer_mb * 1024**2, False)
    _budgets["block_cache"] = rocksdict.Cache(block_cache_mb * 1024**2)


class SharedMemoryOptions(RocksDBOptions):
    """faust's options of a partition database (rocksdict driver), its memtables and block cache taken from
    the process's shared budgets."""

    def as_options(self) -> rocksdict.Options:
        """faust's rocksdict options, charging the shared write buffer manager and reading through a block-based
        table (bloom filter, binary-search index) on the shared block cache; the budgets default to
        ``DEFAULT_WRITE_BUFFER_MB`` and ``DEFAULT_BLOCK_CACHE_MB`` when none were set."""
        options: rocksdict.Options = super().as_options()
        if not _budgets:
            set_memory_budgets(DEFAULT_WRITE_BUFFER_MB, DEFAULT_BLOCK_CACHE_MB)
        options.set_write_buffer_manager(_budgets["write_buffers"])
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(self.bloom_filter_size, block_based=True)
        table.set_block_cache(_budgets["block_cache"])
        table.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        options.set_block_based_table_factory(table)
        return options


class Store(RocksDBStore):
    """faust's RocksDB store with each key in the database of its changelog partition, on the shared memory
    budgets. Raises ``RuntimeError`` unless faust's store uses the rocksdict driver, and for a write to a table
    that does not decide its keys' partitions (not keyed, several partitions) outside an event or with
    ``use_partitioner``."""

    def __init__(self, *args: Any, options: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, options={**OPTIONS, **(options or {})}, **kwargs)
        if not self.use_rocksdict:
            raise RuntimeError("the tables' RocksDB store needs the rocksdict driver (pip install rocksdict)")
        self.rocksdb_options = SharedMemoryOptions(**(self.options or {}), use_rocksdict=True)

    def _key_partition(self, key: bytes) -> int | None:
        """The partition of ``key`` where the table alone decides it: a keyed table's partition for the key,
        0 in a one-partition table; None for the other tables (faust's store then decides)."""
        if isinstance(self.table, KeyedTable):
            return self.table.partition_for_key(self._decode_key(key))
        return 0 if self.table.partitions == 1 else None

    def _write_partition(self, key: bytes) -> int:
        partition = self._key_partition(key)
        if partition is not None:
            return partition
        event = current_event()
        if event is None or self.table.use_partitioner:
            raise RuntimeError(f"table {self.table.name}: no partition for a key written outside an event")
        return event.message.partition

    def _set(self, key: bytes, value: bytes | None) -> None:
        partition = self._write_partition(key)
        self._key_index[key] = partition
        self._db_for_partition(partition).put(key, value)

    def _get(self, key: bytes) -> bytes | None:
        partition = self._key_partition(key)
        if partition is None:
            return super()._get(key)
        value: bytes | None = self._db_for_partition(partition).get(key)
        return value

    def _contains(self, key: bytes) -> bool:
        partition = self._key_partition(key)
        if partition is None:
            return bool(super()._contains(key))
        return self._db_for_partition(partition).get(key) is not None

    def _del(self, key: bytes) -> None:
        partition = self._key_partition(key)
        if partition is None:
            super()._del(key)
        else:
            self._db_for_partition(partition).delete(key)


STORES.aliases["leads-rocksdb"] = "streams.tables.store:Store"
STORE_URL = "leads-rocksdb://"
"""The store URL of ``Store`` (registered with faust's stores when this module is imported)."""
