"""A batch that fails is never committed, and a document that cannot be written loses no clicks (issue 14.2).

faust's ``take()`` acks its buffered events when the loop body raises; ``streams.batches.each_batch`` keeps
a failed batch's offsets uncommitted, so it is read again after the restart.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tests.pipeline.harness import ROOT

pytestmark = pytest.mark.stack

BATCH_APP = '''
import os
from pathlib import Path

import faust
import mode

from streams.batches import each_batch

app = faust.App(os.environ["APP_ID"], broker=os.environ["BROKER"], store="memory://", web_enabled=False,
                agent_supervisor=mode.CrashingSupervisor, consumer_auto_offset_reset="earliest",
                datadir=os.environ["DATA_DIR"])
topic = app.topic(os.environ["TOPIC"], value_serializer="raw", partitions=1)


async def handle(batch):
    if os.environ.get("FAIL"):
        raise RuntimeError(f"a batch of {len(batch)} fails")
    with Path(os.environ["OUT"]).open("a") as out:
        out.writelines(f"{value.decode()}\\n" for value in batch)


@app.agent(topic)
async def batches(stream):
    await each_batch(stream, 10, 1.0, handle)


if __name__ == "__main__":
    app.main()
'''


async def _produce(bootstrap: str, topic: str, values: list[str]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value.encode(), partition=0)
    finally:
        await producer.stop()


async def _committed(bootstrap: str, group: str, topic: str) -> int | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.committed(TopicPartition(topic, 0))
    finally:
        await consumer.stop()


def test_a_failed_batch_is_not_committed(tmp_path: Path, kafka_bootstrap: str) -> None:
    """An agent whose batch raises stops the worker (status 1) with none of the batch's offsets committed;
    the next worker reads the whole batch again, and commits it once handled."""
    tag = uuid.uuid4().hex[:10]
    topic, group = f"take-{tag}", f"take-app-{tag}"
    app_path, out = tmp_path / "batch_app.py", tmp_path / "handled.txt"
    app_path.write_text(BATCH_APP)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "APP_ID": group, "BROKER": f"kafka://{kafka_bootstrap}",
           "TOPIC": topic, "DATA_DIR": str(tmp_path / "data"), "OUT": str(out)}
    command = [sys.executable, str(app_path), "worker", "-l", "info"]
    values = [f"r{i}" for i in range(5)]
    asyncio.run(_produce(kafka_bootstrap, topic, values))

    failed = subprocess.run(command, env={**env, "FAIL": "1"}, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1 and "a batch of 5 fails" in failed.stdout + failed.stderr
    assert asyncio.run(_committed(kafka_bootstrap, group, topic)) is None

    worker = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while asyncio.run(_committed(kafka_bootstrap, group, topic)) != len(values):
            assert time.monotonic() < deadline, "the batch was not committed once handled"
            assert worker.poll() is None, f"worker exited with {worker.returncode}"
            time.sleep(1)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
    assert out.read_text().split() == values
