"""``KeyedTable.write`` on the stack's Kafka broker: the changelog records, the store and the persisted offsets it
leaves are those of faust's own per-key path (``table[key] = value``, ``del table[key]``) for the same writes."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import faust
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.types import TP

from streams.tables.keyed import keyed_table
from streams.tables.store import STORE_URL
from streams.topic_records import EntitySnapshot
from streams.topics import partition_of

pytestmark = pytest.mark.stack

KEYS = [f"mc.ien.subscriber*{n}" for n in range(40)]


def snapshot(key: str, version: int) -> EntitySnapshot:
    return EntitySnapshot(entity=key, tenant="ien", kind="subscriber", retrieved_at=1_790_000_000.5 + version,
                          data={"id": key.rpartition("*")[2], "email": f"{version}@x.test", "attributes": {"a": 1}})


async def changelog(bootstrap: str, topic: str) -> list[tuple[int, bytes | None, bytes | None]]:
    """Every record of ``topic`` (4 partitions) as (partition, key, value), in each partition's order."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, partition) for partition in range(4)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[tuple[int, bytes | None, bytes | None]] = []
        async with asyncio.timeout(60):
            while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
                for tp, messages in (await consumer.getmany(timeout_ms=500)).items():
                    records += [(tp.partition, m.key, m.value) for m in messages]
        return sorted(records, key=lambda record: record[0])  # stable: each partition's order kept
    finally:
        await consumer.stop()


async def test_a_batch_write_leaves_what_faust_per_key_writes_leave(kafka_url: str, kafka_bootstrap: str,
                                                                    tmp_path: Path) -> None:
    app = faust.App(f"keyed-test-{uuid.uuid4().hex[:10]}", broker=kafka_url, web_enabled=False, store=STORE_URL,
                    datadir=str(tmp_path), topic_partitions=4, topic_replication_factor=1)
    batch = keyed_table(app, "batch", partitions=4, value_type=EntitySnapshot)
    per_key = keyed_table(app, "per-key", partitions=4, value_type=EntitySnapshot)
    await app.producer.maybe_start()
    try:
        for table in (batch, per_key):
            await table.changelog_topic.maybe_declare()
        first = {key: snapshot(key, 1) for key in KEYS}
        second: dict[str, Any] = {KEYS[0]: None, KEYS[1]: snapshot(KEYS[1], 2), "mc.ien.subscriber*missing": None}
        await batch.write(first)
        await batch.write(second)
        for key, value in first.items():
            per_key[key] = value
        del per_key[KEYS[0]]
        per_key[KEYS[1]] = snapshot(KEYS[1], 2)
        await app.producer.flush()
        await asyncio.sleep(0.5)  # faust notes an offset in a callback once the record is delivered

        written = await changelog(kafka_bootstrap, batch.changelog_topic.get_topic_name())
        faust_written = await changelog(kafka_bootstrap, per_key.changelog_topic.get_topic_name())
        tombstone = (partition_of("mc.ien.subscriber*missing", 4), b'"mc.ien.subscriber*missing"', None)
        assert tombstone in written  # a delete of a key the table lacks still says so on the changelog
        written.remove(tombstone)
        assert written == faust_written and len(written) == len(KEYS) + 2
        assert (partition_of(KEYS[0], 4), b'"mc.ien.subscriber*0"', None) in written
        assert all(partition == partition_of(EntitySnapshot.loads(value).entity, 4)
                   for partition, _, value in written if value is not None)

        assert KEYS[0] not in batch and batch.get(KEYS[1]) == snapshot(KEYS[1], 2)
        assert {key: batch.get(key) for key in KEYS} == {key: per_key.get(key) for key in KEYS}
        for partition in range(4):  # where a restart's recovery starts: the partition's last record
            last = sum(record[0] == partition for record in [*written, tombstone]) - 1
            assert batch.data.persisted_offset(TP(batch.changelog_topic.get_topic_name(), partition)) == last
            faust_last = sum(record[0] == partition for record in faust_written) - 1
            assert per_key.data.persisted_offset(TP(per_key.changelog_topic.get_topic_name(), partition)) == faust_last
    finally:
        await app.producer.stop()
