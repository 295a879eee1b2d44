"""SQS through a real worker: ingress (long poll, delete after produce, poison to dead-letter) and ack
egress to a queue that ``leads-sync mark-from-queue`` then marks in the SFMC emulator.

A crash between produce and delete leaves rows in Kafka and their message in the queue; the test sets
up exactly that state for a third of the messages (their rows are produced to click-rows directly and
the messages still sent) and checks that no click is counted twice.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from pymongo import MongoClient

from sfmc_emulator import EmulatorThread
from streams.entity_ids import entity
from streams.settings import load_settings
from streams.topics import partition_of
from tests.edges.helpers import actual_partition, aws_client, aws_env, clean_dataset, expected_partition, messages
from tests.pipeline.harness import ROOT, Worker, emulator_rows, read_topic, unique_prefix, wait_until, worker_env

pytestmark = pytest.mark.stack
PARTITIONS = load_settings().topic_partitions
"""The workers' partitions (the default: their environment sets none)."""


def _rows(bodies: list[bytes]) -> list[dict[str, str]]:
    """The rows of bridged messages (the ``rows`` and the single ``row`` form)."""
    return [row for body in bodies for row in orjson.loads(body).get("rows") or [orjson.loads(body)["row"]]]


async def _produce_directly(bootstrap: str, topic: str, tenant: str, bodies: list[bytes]) -> None:
    """What a worker that crashed after producing, before deleting, left in Kafka."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        rows = _rows(bodies)
        by_partition: dict[int, list[dict[str, str]]] = defaultdict(list)
        for row in rows:  # where the worker puts them (streams.topics.append_click_rows)
            by_partition[partition_of(entity(tenant, "send", row["JobID"].strip()), PARTITIONS)].append(row)
        for partition, group in by_partition.items():
            value = {"tenant": tenant, "rows": group, "read_at": time.time(), "source": "sqs"}
            await producer.send_and_wait(topic, orjson.dumps(value), key=f"{tenant}:{partition}".encode(),
                                         partition=partition)
    finally:
        await producer.stop()


def _queue_empty(sqs: Any, url: str) -> bool:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    names = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")
    return sum(int(attributes[name]) for name in names) == 0


def _repeated_guids(db: Any) -> list[Any]:
    return [doc["_id"] for doc in db["event-email-clicks"].find({})
            if any(count > 1 for count in Counter([*doc.get("guids", []), *doc.get("bots", [])]).values())]


def test_ingress_acks_queue_and_mark_from_queue(tmp_path: Path, aws_endpoint_url: str, kafka_url: str,
                                                kafka_bootstrap: str, mongo_url: str) -> None:
    dataset = clean_dataset(seed=12)
    unit = dataset["units"][0]
    all_ids = {row["ID"] for row in unit["rows"]}
    bodies = messages(unit)
    poison = ["{not json", '{"tenant": "ien"}', '{"tenant": "nobody", "row": {"ID": "x"}}']
    sqs = aws_client("sqs", aws_endpoint_url)
    suffix = uuid.uuid4().hex[:8]
    ingress = sqs.create_queue(QueueName=f"clicks-in-{suffix}")["QueueUrl"]
    acks_name = f"clicks-processed-{suffix}"
    acks_url = sqs.create_queue(QueueName=acks_name)["QueueUrl"]

    prefix = unique_prefix()
    database = f"edges_{prefix}"
    client: MongoClient = MongoClient(mongo_url, tz_aware=True, serverSelectionTimeoutMS=10_000)
    db = client[database]
    want = expected_partition(dataset)
    with EmulatorThread(dataset) as emulator:
        url = emulator.emulator.url
        env = worker_env(dataset, url, kafka_url=kafka_url, mongo_url=mongo_url, database=database, prefix=prefix,
                         **aws_env(aws_endpoint_url, LEADS_SQS_QUEUE_NAME=f"clicks-in-{suffix}",
                                   LEADS_SQS_ACKS_QUEUE=acks_name, LEADS_SQS_WAIT_SECONDS="1",
                                   LEADS_SQS_VISIBILITY_TIMEOUT="20"))

        def processed() -> set[str]:
            return {row["ID"] for row in emulator_rows(url, unit["client_id"]) if row.get("Processed") == "True"}

        worker = Worker(env, tmp_path, name="worker").start()
        try:
            wait_until(lambda: "Worker ready" in worker.log(), 90, "the worker to start", [worker])
            crashed = bodies[: len(bodies) // 3]
            asyncio.run(_produce_directly(kafka_bootstrap, f"{prefix}.click-rows", unit["tenant"], crashed))
            for start in range(0, len(bodies), 10):
                sqs.send_message_batch(QueueUrl=ingress, Entries=[
                    {"Id": str(i), "MessageBody": body.decode()} for i, body in enumerate(bodies[start : start + 10])])
            sqs.send_message_batch(QueueUrl=ingress, Entries=[
                {"Id": str(i), "MessageBody": body} for i, body in enumerate(poison)])

            def explain() -> str:
                actual = actual_partition(db)
                attributes = sqs.get_queue_attributes(QueueUrl=ingress, AttributeNames=["All"])["Attributes"]
                written = {guid for guids, bots in actual for guid in guids | bots}
                crashed_ids = {row["ID"] for row in _rows(crashed)}
                missing = sorted(all_ids - written)
                letters = asyncio.run(read_topic(kafka_bootstrap, f"{prefix}.dead-letter"))
                return (f"{len(want - actual)} click documents missing, {len(actual - want)} unexpected; rows "
                        f"unwritten {missing} (of them produced directly: {sorted(crashed_ids & set(missing))}); "
                        f"dead letters by stage {dict(Counter(letter['value']['stage'] for letter in letters))}; "
                        f"ingress queue {attributes['ApproximateNumberOfMessages']} visible, "
                        f"{attributes['ApproximateNumberOfMessagesNotVisible']} in flight")

            wait_until(lambda: actual_partition(db) == want and _queue_empty(sqs, ingress), 120,
                       "every click counted and the ingress queue emptied", [worker], explain=explain)
            assert _repeated_guids(db) == []
            assert processed() == set(), "with an acks queue the worker does not call SFMC itself"

            def mark() -> bool:
                done = subprocess.run([sys.executable, "-m", "streams", "mark-from-queue", "--until-empty"],
                                      cwd=ROOT, env=env, capture_output=True, timeout=120)
                assert done.returncode == 0, done.stderr.decode()[-3000:]
                return processed() == all_ids

            wait_until(mark, 120, "mark-from-queue to mark every row", [worker])
        finally:
            worker.stop(signal.SIGTERM)
    assert _queue_empty(sqs, acks_url)
    assert _repeated_guids(db) == [] and actual_partition(db) == want

    letters = asyncio.run(read_topic(kafka_bootstrap, f"{prefix}.dead-letter"))
    reasons = sorted(letter["value"]["reason"] for letter in letters if letter["value"]["stage"] == "sqs")
    assert len(reasons) == 3, reasons
    assert reasons[0].startswith("missing rows") and reasons[1].startswith("not JSON") and "nobody" in reasons[2]
    client.drop_database(database)
    client.close()
