"""Faust's aiokafka transport, with a consumer that never skips the start of a partition.

During a rebalance faust drops the records it has fetched but not yet handed to an agent, then seeks every
partition back to its committed offset. aiokafka seeks only to committed offsets above zero, so a partition
whose group has committed nothing yet stays where the dropped fetch left it, and its first records are
never processed. That is every request partition in the first seconds of a fresh deployment (a second worker
joining while the first resolves the first polls' entities lost whole request records). Seeking such
partitions to their beginning is what ``auto_offset_reset="earliest"`` promises anyway.
"""

from __future__ import annotations

from collections.abc import Mapping

from faust.transport.drivers import aiokafka
from faust.types import TP


class Consumer(aiokafka.Consumer):
    """faust's aiokafka consumer, seeking a stream partition with nothing committed to its beginning."""

    async def seek_to_committed(self) -> Mapping[TP, int]:
        """Seek every partition to its committed offset, as faust does, then each stream-topic partition whose
        committed offset is none or 0 to its beginning; returns faust's ``{partition: committed offset}``."""
        committed = await super().seek_to_committed()
        # changelog partitions are read by table recovery from their own offsets; only stream topics ack
        uncommitted = [tp for tp, offset in committed.items()
                       if not offset and self.app.topics.acks_enabled_for(tp.topic)]
        if uncommitted:
            await self._thread.seek_to_beginning(*uncommitted)
        return committed


class Transport(aiokafka.Transport):
    """faust's aiokafka transport with our ``Consumer``."""

    Consumer = Consumer
