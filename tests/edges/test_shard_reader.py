"""The Kinesis shard reader against a fake Kinesis that closes shards the way AWS does (no next
iterator at a closed shard's end): parents before children, checkpoints only after produce, resume."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from streams.edges.kinesis import SHARD_END, ShardReader
from tests.edges.helpers import Produced, unit_settings


class FakeKinesis:
    def __init__(self) -> None:
        self.shards: dict[str, dict[str, Any]] = {}
        self.next_seq = 100

    def add_shard(self, shard_id: str, *parents: str) -> None:
        meta: dict[str, Any] = {"ShardId": shard_id, "SequenceNumberRange": {"StartingSequenceNumber": "1"}}
        if parents:
            meta["ParentShardId"] = parents[0]
        self.shards[shard_id] = {"meta": meta, "records": [], "closed": False}

    def put(self, shard_id: str, row_id: str) -> None:
        self.next_seq += 1
        data = orjson.dumps({"tenant": "ien", "row": {"ID": row_id, "JobID": "1"}})
        self.shards[shard_id]["records"].append({"SequenceNumber": str(self.next_seq), "Data": data})

    def close(self, shard_id: str) -> None:
        self.shards[shard_id]["closed"] = True

    async def list_shards(self, **kwargs: Any) -> dict[str, Any]:
        return {"Shards": [shard["meta"] for shard in self.shards.values()]}

    async def get_shard_iterator(self, StreamName: str, ShardId: str, ShardIteratorType: str,
                                 StartingSequenceNumber: str | None = None) -> dict[str, Any]:
        records = self.shards[ShardId]["records"]
        position = 0
        if ShardIteratorType == "AFTER_SEQUENCE_NUMBER":
            position = next(i + 1 for i, r in enumerate(records) if r["SequenceNumber"] == StartingSequenceNumber)
        return {"ShardIterator": f"{ShardId}|{position}"}

    async def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        shard_id, position = ShardIterator.split("|")
        shard = self.shards[shard_id]
        records = shard["records"][int(position) : int(position) + Limit]
        end = int(position) + len(records)
        following = None if shard["closed"] and end == len(shard["records"]) else f"{shard_id}|{end}"
        return {"Records": records, "NextShardIterator": following, "MillisBehindLatest": 0}


class Clients:
    def __init__(self, kinesis: FakeKinesis) -> None:
        self.kinesis = kinesis

    async def get(self, service: str) -> FakeKinesis:
        return self.kinesis


Kinesis = tuple[FakeKinesis, Produced]


@pytest.fixture
def kinesis() -> Kinesis:
    return FakeKinesis(), Produced()


def reader(kinesis: Kinesis, checkpoints: dict[str, str], bridge: Produced | None = None) -> ShardReader:
    fake, produced = kinesis
    settings = unit_settings("ien", kinesis_stream="clicks")
    return ShardReader(settings, Clients(fake), bridge or produced, checkpoints)  # type: ignore[arg-type]


async def test_parents_are_read_to_their_end_before_children(kinesis: Kinesis) -> None:
    fake, produced = kinesis
    fake.add_shard("s0")
    fake.add_shard("s1")
    fake.put("s0", "a")
    fake.put("s1", "b")
    checkpoints: dict[str, str] = {}
    shards = reader(kinesis, checkpoints)
    await shards.tick()
    assert produced.row_ids() == ["a", "b"]
    # s0 splits into s2 and s3; s0 gets one more record before it closes
    fake.put("s0", "c")
    fake.close("s0")
    fake.add_shard("s2", "s0")
    fake.add_shard("s3", "s0")
    fake.put("s2", "d")
    fake.put("s3", "e")
    shards.listed_at = 0.0  # the periodic refresh finds the children
    await shards.tick()  # children wait: their parent is not finished yet
    assert produced.row_ids() == ["a", "b", "c"] and checkpoints["clicks:s0"] == SHARD_END
    await shards.tick()
    assert produced.row_ids() == ["a", "b", "c", "d", "e"]
    assert set(checkpoints) == {"clicks:s0", "clicks:s1", "clicks:s2", "clicks:s3"}


async def test_a_restart_resumes_after_the_checkpoint(kinesis: Kinesis) -> None:
    fake, produced = kinesis
    fake.add_shard("s0")
    for row_id in "abc":
        fake.put("s0", row_id)
    checkpoints: dict[str, str] = {}
    await reader(kinesis, checkpoints).tick()
    fake.put("s0", "d")
    await reader(kinesis, checkpoints).tick()  # a new worker, the same (recovered) table
    assert produced.row_ids() == ["a", "b", "c", "d"]


async def test_no_checkpoint_when_the_produce_fails(kinesis: Kinesis) -> None:
    fake, _ = kinesis
    fake.add_shard("s0")
    fake.put("s0", "a")
    checkpoints: dict[str, str] = {}
    with pytest.raises(ConnectionError):
        await reader(kinesis, checkpoints, Produced(fail=ConnectionError("broker down"))).tick()
    assert checkpoints == {}
