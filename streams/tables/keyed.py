"""Tables keyed by entity whose changelog partition is computed from the key.

The request topics route an entity's requests to ``partition_of(entity)``; these tables put the entity's
changelog record on that same partition, so a key's entry lives with the worker that owns its requests,
even when a ``take()`` batch spans partitions. The partition is computed here rather than by the producer's
partitioner (faust's ``use_partitioner``), which needs topic metadata a worker may not have yet when
several workers start together.

A batch of entries is written with ``KeyedTable.write``: what ``table[key] = value`` does for each, at about a
quarter of the CPU (``bench/table_writes.py``). faust's per-key path serializes each value twice (store and
changelog), buffers each changelog record as a future message, has aiokafka make a future per record and
handles each delivery in a callback of its own; ``write`` serializes once and sends a record batch per partition.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, cast

import faust
import orjson
from aiokafka.errors import KafkaError
from faust.exceptions import ProducerSendError
from faust.stores.base import SerializedStore
from faust.types import TP, TableT
from faust.types.enums import ProcessingGuarantee

from streams.record_batches import send_batches
from streams.topics import partition_of

ChangelogRecord = tuple[int, bytes, bytes | None]
"""A table entry's changelog record: its partition, key and value (None: a tombstone), serialized."""


class KeyedTable(faust.Table):
    """A ``faust.Table`` of str keys whose changelog partition is the key's ``partition_of``."""

    def partition_for_key(self, key: Any) -> int:
        """The changelog partition of ``key`` (of the table's partitions, else the app's)."""
        return partition_of(key, self.partitions or self.app.conf.topic_partitions)

    def partition_for_raw_key(self, raw_key: bytes) -> int:
        """``partition_for_key`` of a key given as the JSON the table serializes it to (the store's key), read
        with orjson (a fifth of faust's key decoding)."""
        return partition_of(orjson.loads(raw_key), self.partitions or self.app.conf.topic_partitions)

    def field(self, key: str, name: str) -> Any:
        """Field ``name`` of the value of ``key`` (None when the key has no value or the value no such field),
        read from the value's JSON without building its record: about a third of ``table.get(key)``'s CPU on the
        RocksDB store (7 against 25 µs for a subscriber snapshot)."""
        data = self.data
        if isinstance(data, SerializedStore):
            raw = data._get(data._encode_key(key))
            return None if raw is None else orjson.loads(raw).get(name)
        return getattr(data.get(key), name, None)

    async def write(self, entries: Mapping[str, Any]) -> None:
        """Set each key of ``entries`` to its value, or delete it where the value is None, as ``table[key] = value``
        and ``del table[key]`` do: in the local store, in the order given, once the producer holds the changelog
        records (one on each key's partition; a tombstone for a delete). Returns once Kafka has every record,
        having noted in each partition's store the changelog offset it reached (faust's persisted offset, where a
        restart's recovery starts). Raises faust's ``ProducerSendError`` when the producer cannot take the records
        (the store is then left as it was, though batches queued before the failure may reach the changelog, and
        a recovery applies them) or Kafka refuses one (the store then holds every entry, as faust's per-key path
        would).

        Each value is serialized once, for the changelog, and those bytes go to a RocksDB store as they are (as
        faust's recovery puts changelog records there). The records go to Kafka as record batches
        (``streams.record_batches``), outside any transaction (``keyed_table`` refuses exactly-once apps)."""
        topic, data = self.changelog_topic, self.data
        records: list[ChangelogRecord] = []
        for key, value in entries.items():
            raw_key = topic.prepare_key(key, self.key_serializer)[0]
            raw_value = None if value is None else topic.prepare_value(value, self.value_serializer)[0]
            records.append((self.partition_for_raw_key(raw_key), raw_key, raw_value))
        name = topic.get_topic_name()
        sent = await send_batches(self.app, name, records)
        self._apply(entries, records)
        try:
            delivered = await asyncio.gather(*(batch.delivered for batch in sent))
        except KafkaError as exc:
            raise ProducerSendError(f"Error while sending: {exc!r}") from exc
        reached: dict[int, int] = {}
        for batch, metadata in zip(sent, delivered, strict=True):
            reached[batch.partition] = max(reached.get(batch.partition, -1), metadata.offset + batch.records - 1)
        for partition, offset in reached.items():
            data.set_persisted_offset(TP(name, partition), offset)

    def _apply(self, entries: Mapping[str, Any], records: list[ChangelogRecord]) -> None:
        """Apply ``entries`` to the local store, from their changelog ``records`` on a RocksDB store."""
        data = self.data
        store = data if isinstance(data, SerializedStore) else None
        for (key, value), (_, raw_key, raw_value) in zip(entries.items(), records, strict=True):
            if value is None:
                if store is None:
                    data.pop(key, None)
                else:
                    store._del(raw_key)
                self._sensor_on_del(self, key)
            else:
                if store is None:
                    data[key] = value
                else:
                    store._set(raw_key, raw_value)
                self._sensor_on_set(self, key, value)


def keyed_table(app: faust.App, name: str, *, partitions: int | None = None, **options: Any) -> KeyedTable:
    """A ``KeyedTable`` named ``name`` added to ``app``'s tables (``options``: faust's table options). Raises
    ``ValueError`` for an exactly-once app (``processing_guarantee``)."""
    if app.conf.processing_guarantee == ProcessingGuarantee.EXACTLY_ONCE:
        raise ValueError(f"table {name}: KeyedTable.write sends outside transactions, so not in an exactly-once app")
    table = KeyedTable(app, name=name, beacon=app.tables.beacon, partitions=partitions, key_type=str, **options)
    return cast(KeyedTable, app.tables.add(cast(TableT, table)))
