"""Records and bytes per topic of one bench run (run ``bench.run`` with ``--keep-topics``; its result's
``topic_prefix`` names the run):

    .venv/bin/python -m bench.topics b5f633bb7

Every topic whose name holds the prefix (the pipeline's ``{prefix}.*`` and the tables' changelogs
``bench-{prefix}-*-changelog``) is read from its beginning to its end; a line per topic gives its records,
their keys' and values' bytes, and bytes per record.
"""

from __future__ import annotations

import argparse
import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from .run import KAFKA


async def topic_sizes(prefix: str, bootstrap: str = KAFKA) -> dict[str, tuple[int, int]]:
    """``{topic: (records, bytes of keys and values)}`` for every topic whose name contains ``prefix``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = sorted(name for name in await admin.list_topics() if prefix in name)
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    sizes: dict[str, tuple[int, int]] = {}
    try:
        for name in names:
            consumer._client.add_topic(name)  # aiokafka has no public call for another topic's metadata
            await consumer._client.force_metadata_update()
            partitions = [TopicPartition(name, p) for p in sorted(consumer.partitions_for_topic(name) or ())]
            records = size = 0
            if partitions:
                consumer.assign(partitions)
                await consumer.seek_to_beginning(*partitions)
                ends = await consumer.end_offsets(partitions)
                while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                    for messages in (await consumer.getmany(timeout_ms=500, max_records=10_000)).values():
                        records += len(messages)
                        size += sum(len(m.key or b"") + len(m.value or b"") for m in messages)
            sizes[name] = (records, size)
    finally:
        await consumer.stop()
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prefix", help="the run's topic_prefix")
    sizes = asyncio.run(topic_sizes(parser.parse_args().prefix))
    for name, (records, size) in sizes.items():
        print(f"{name:56s} {records:8,d} records {size / 1e6:8.2f} MB {size / max(records, 1):9,.0f} B/record")
    print(f"{'total':56s} {sum(r for r, _ in sizes.values()):8,d} records "
          f"{sum(s for _, s in sizes.values()) / 1e6:8.2f} MB")


if __name__ == "__main__":
    main()
