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

from streams.topics import partition_of


class KeyedTable(faust.Table):
    """A ``faust.Table`` of str keys whose changelog partition is the key's ``partition_of``."""

    def partition_for_key(self, key: Any) -> int:
        """The changelog partition of ``key`` (of the table's partitions, else the app's)."""
        return partition_of(key, self.partitions or self.app.conf.topic_partitions)


def keyed_table(app: faust.App, name: str, *, partitions: int | None = None, **options: Any) -> TableT:
    """A ``KeyedTable`` named ``name`` added to ``app``'s tables (``options``: faust's table options)."""
    table = KeyedTable(app, name=name, beacon=app.tables.beacon, partitions=partitions, key_type=str, **options)
    return cast(TableT, app.tables.add(table))
