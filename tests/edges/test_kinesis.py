"""Kinesis ingress through a real worker: two shards, a restart and a reshard in between; every record
reaches click-rows once (the checkpoint resumes), poison records are dead-lettered, clicks count once."""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from pymongo import MongoClient

from sfmc_emulator import EmulatorThread
from tests.edges.helpers import (
    actual_partition,
    aws_client,
    aws_env,
    clean_dataset,
    expected_partition,
    messages,
)
from tests.pipeline.harness import Worker, emulator_rows, read_topic, unique_prefix, wait_until, worker_env

pytestmark = pytest.mark.stack


def _put(kinesis: Any, stream: str, bodies: list[bytes]) -> None:
    entries = [{"Data": body, "PartitionKey": uuid.uuid4().hex} for body in bodies]
    for start in range(0, len(entries), 500):
        reply = kinesis.put_records(StreamName=stream, Records=entries[start : start + 500])
        assert not reply.get("FailedRecordCount")


def test_two_shards_restart_and_reshard(tmp_path: Path, aws_endpoint_url: str, kafka_url: str,
                                        kafka_bootstrap: str, mongo_url: str) -> None:
    dataset = clean_dataset(seed=11)
    unit = dataset["units"][0]
    bodies = messages(unit)
    half = len(bodies) // 2
    first_ids = {row["ID"] for body in bodies[:half] for row in _rows(body)}
    stream = f"clicks-{uuid.uuid4().hex[:8]}"
    kinesis = aws_client("kinesis", aws_endpoint_url)
    kinesis.create_stream(StreamName=stream, ShardCount=2)
    kinesis.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
    poison = [b"{not json", b'{"tenant": "nobody", "row": {"ID": "x"}}']
    _put(kinesis, stream, bodies[:half] + poison)

    prefix = unique_prefix()
    database = f"edges_{prefix}"
    client: MongoClient = MongoClient(mongo_url, tz_aware=True, serverSelectionTimeoutMS=10_000)
    with EmulatorThread(dataset) as emulator:
        url = emulator.emulator.url
        env = worker_env(dataset, url, kafka_url=kafka_url, mongo_url=mongo_url, database=database, prefix=prefix,
                         **aws_env(aws_endpoint_url, LEADS_KINESIS_STREAM=stream, LEADS_KINESIS_POLL_INTERVAL="0.5"))

        def processed() -> set[str]:
            return {row["ID"] for row in emulator_rows(url, unit["client_id"]) if row.get("Processed") == "True"}

        worker = Worker(env, tmp_path, name="first").start()
        try:
            wait_until(lambda: first_ids <= processed(), 120, "the first half to be processed", [worker])
        finally:
            worker.stop(signal.SIGTERM)

        # reshard while no worker runs: shard 0 splits; the rest of the records go to its children and shard 1
        shards = kinesis.list_shards(StreamName=stream)["Shards"]
        low, high = (int(x) for x in shards[0]["HashKeyRange"].values())
        kinesis.split_shard(StreamName=stream, ShardToSplit=shards[0]["ShardId"],
                            NewStartingHashKey=str((low + high) // 2))
        _put(kinesis, stream, bodies[half:])
        assert len(kinesis.list_shards(StreamName=stream)["Shards"]) == 4

        want = expected_partition(dataset)
        db = client[database]
        all_ids = {row["ID"] for row in unit["rows"]}
        worker = Worker(env, tmp_path, name="second").start()
        try:
            wait_until(lambda: all_ids <= processed() and actual_partition(db) == want, 120,
                       "every row to be counted and processed", [worker])
        finally:
            worker.stop(signal.SIGTERM)

    records = asyncio.run(read_topic(kafka_bootstrap, f"{prefix}.click-rows"))
    produced = [row["ID"] for record in records for row in record["value"]["rows"]]
    assert sorted(produced) == sorted(all_ids), "each Kinesis record reached click-rows exactly once"
    assert {record["value"]["source"] for record in records} == {"kinesis"}
    letters = asyncio.run(read_topic(kafka_bootstrap, f"{prefix}.dead-letter"))
    reasons = sorted(letter["value"]["reason"] for letter in letters if letter["value"]["stage"] == "kinesis")
    assert len(reasons) == 2 and reasons[0].startswith("not JSON") and "nobody" in reasons[1]
    assert actual_partition(db) == want
    client.drop_database(database)
    client.close()


def _rows(body: bytes) -> list[dict[str, str]]:
    data = orjson.loads(body)
    return data["rows"] if "rows" in data else [data["row"]]
