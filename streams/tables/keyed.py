"""Tables keyed by entity whose changelog partition is computed from the key.

The request topics route an entity's requests to ``partition_of(entity)``; these tables put the entity's
changelog record on that same partition, so a key's entry lives with the worker that owns its requests,
even when a ``take()`` batch spans partitions. The partition is computed here rather than by the producer's
partitioner (faust's ``use_partitioner``), which needs topic metadata a worker may not have yet when
several workers start together.
"""

from __future__ import annotations

from typing import Any, cast

import faust
from faust.types import TableT

from streams.app import app, settings
from streams.topics import partition_of


class KeyedTable(faust.Table):
    def partition_for_key(self, key: Any) -> int:
        return partition_of(key, self.partitions or settings.topic_partitions)


def keyed_table(name: str, *, partitions: int | None = None, **options: Any) -> TableT:
    table = KeyedTable(app, name=name, beacon=app.tables.beacon, partitions=partitions, key_type=str, **options)
    return cast(TableT, app.tables.add(table))
