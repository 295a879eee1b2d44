"""A batch that fails is never committed, and a document that cannot be written loses no clicks (issue 14.2).

faust's ``take()`` acks its buffered events when the loop body raises, as a plain ``async for`` over a stream
acks its current event; ``streams.batches.each_batch`` and ``each_event`` keep a failed batch's (or event's)
offsets uncommitted, so it is read again after the restart.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from bson import ObjectId
from pymongo import MongoClient

from sfmc_emulator import EmulatorThread, Sizes
from streams.entity_ids import object_id
from tests.pipeline.expected import Expected, expected_documents
from tests.pipeline.harness import ROOT, Worker, unique_prefix, url_acknowledgment_docs, wait_until, worker_env
from tests.pipeline.test_end_to_end import (
    Run,
    assert_documents,
    collect,
    dead_letters,
    drain,
    make_dataset,
    stop_workers,
    wait_for_dead_letters,
)

pytestmark = pytest.mark.stack

REREAD = 15.0
"""Seconds to let the worker read the refused click's rows again: past ``LEADS_REACK_AFTER_SECONDS`` (10 s in
``worker_env``) and a poll (2 s)."""

BATCH_APP = '''
import asyncio
import os
from pathlib import Path

import faust
import mode

from streams.batches import each_batch, each_event

app = faust.App(os.environ["APP_ID"], broker=os.environ["BROKER"], store="memory://", web_enabled=False,
                agent_supervisor=mode.CrashingSupervisor, consumer_auto_offset_reset="earliest",
                datadir=os.environ["DATA_DIR"])
topic = app.topic(os.environ["TOPIC"], value_serializer="raw", partitions=1)


async def handle(batch):
    if os.environ.get("FAIL"):
        await asyncio.sleep(1.0)  # the records after the batch reach the stream meanwhile
        raise RuntimeError(f"a batch of {len(batch)} fails")
    with Path(os.environ["OUT"]).open("a") as out:
        out.writelines(f"{value.decode()}\\n" for value in batch)


async def handle_one(value):
    await handle([value])


@app.agent(topic)
async def batches(stream):
    if os.environ["FORM"] == "event":
        await each_event(stream, handle_one)
    else:
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


@pytest.mark.parametrize(("form", "failing"), [("batch", 10), ("event", 1)])
def test_a_failed_batch_is_not_committed(tmp_path: Path, kafka_bootstrap: str, form: str, failing: int) -> None:
    """An agent whose batch (``each_batch``) or event (``each_event``) raises stops the worker (status 1) with
    none of its offsets committed, neither the failed batch's nor those of the records the stream had fetched
    behind it; the next worker reads them all again, and commits them once handled."""
    tag = uuid.uuid4().hex[:10]
    topic, group = f"take-{tag}", f"take-app-{tag}"
    app_path, out = tmp_path / "batch_app.py", tmp_path / "handled.txt"
    app_path.write_text(BATCH_APP)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "APP_ID": group, "BROKER": f"kafka://{kafka_bootstrap}",
           "TOPIC": topic, "DATA_DIR": str(tmp_path / "data"), "OUT": str(out), "FORM": form}
    command = [sys.executable, str(app_path), "worker", "-l", "info"]
    values = [f"r{i}" for i in range(25)]  # the first batch of 10 fails while the stream holds the rest
    asyncio.run(_produce(kafka_bootstrap, topic, values))

    failed = subprocess.run(command, env={**env, "FAIL": "1"}, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1 and f"a batch of {failing} fails" in failed.stdout + failed.stderr
    assert asyncio.run(_committed(kafka_bootstrap, group, topic)) is None

    worker = Worker(env, tmp_path, name="batch-app", command=command).start()
    try:
        wait_until(lambda: asyncio.run(_committed(kafka_bootstrap, group, topic)) == len(values), 60,
                   "the batch to be committed once handled", [worker],
                   explain=lambda: f"committed {asyncio.run(_committed(kafka_bootstrap, group, topic))}")
    finally:
        worker.stop()
    assert out.read_text().split() == values


# --------------------------------------------------------------------------------------------------
# documents MongoDB refuses


def _poisoned_click(expected: Expected, rows: Counter[tuple[str, str]]) -> tuple[Any, str, set[str]]:
    """A click document of the clean run with a guid row (and a bot row, where the dataset has one: which
    documents have both depends on where today's Chicago days fall), all of them rows of their own ID that end
    processed: its key, tenant and row IDs."""
    candidates = []
    for key, doc in expected.docs["event-email-clicks"].items():
        tenant = key[1].entity.split(".")[1]
        ids = {*doc["guids"], *doc.get("bots", ())}
        if doc["guids"] and all(rows[tenant, row] == 1 for row in ids) and ids <= expected.processed[tenant]:
            candidates.append((not doc.get("bots"), key, tenant, ids))
    assert candidates, "no click document with a guid row in the dataset"
    _, key, tenant, ids = min(candidates, key=lambda candidate: candidate[0])
    return key, tenant, ids


def test_refused_documents_are_dead_lettered_and_the_rest_written(tmp_path: Path, kafka_url: str, mongo_url: str,
                                                                  kafka_bootstrap: str) -> None:
    """A click document whose ``guids`` is a string (an older system's) and a send document whose
    ``externalSource`` is a string: MongoDB refuses their updates. The click's rows are dead-lettered with the
    reason and stay unprocessed in SFMC (also after their re-reads), the send is dead-lettered; the worker runs
    on, and every other document and row ends as in a clean run."""
    _run_with_refused_documents(tmp_path, kafka_url, mongo_url, kafka_bootstrap)


def test_a_sink_that_fails_is_read_again_after_the_restart(tmp_path: Path, kafka_url: str, mongo_url: str,
                                                           kafka_bootstrap: str) -> None:
    """The run above with a second, unrelated failure: the clicks sink raises once, part-way through writing
    its first batch and before acking it (``LEADS_TEST_FAIL_ONCE``), and the worker exits non-zero. The same
    worker started again reads that batch again, and the end state is that of the run without the failure."""
    _run_with_refused_documents(tmp_path, kafka_url, mongo_url, kafka_bootstrap,
                                fail_once=tmp_path / "clicks-sink-failed")


def _fail_once(worker: Worker, marker: Path) -> None:
    """Start ``worker`` with the clicks sink's test-only failure armed: it exits non-zero in the sink's first
    batch, leaving ``marker``."""
    process = worker.start().process
    assert process is not None
    try:
        status = process.wait(120)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the worker did not exit:\n{worker.log()[-3000:]}") from None
    log = worker.log()
    assert status != 0 and marker.exists() and "LEADS_TEST_FAIL_ONCE: " in log, log[-3000:]


def _run_with_refused_documents(tmp_path: Path, kafka_url: str, mongo_url: str, kafka_bootstrap: str,
                                fail_once: Path | None = None) -> None:
    """The refused documents' run and its checks; with ``fail_once``, the worker's first start fails once
    (``_fail_once``) before the worker is started again, unchanged."""
    dataset = make_dataset(Sizes(rows=600, sends=10, subscribers=80, emails=5, categories=6, days=2), seed=14)
    expected = expected_documents(dataset)
    rows = Counter((unit["tenant"], row["ID"]) for unit in dataset["units"] for row in unit["rows"])
    click_key, tenant, click_rows = _poisoned_click(expected, rows)
    day, job, url, usr = click_key
    send = next(entity for entity in expected.docs["email-sends"]
                if entity not in expected.sending and entity != job.entity)
    prefix = unique_prefix()
    client: MongoClient = MongoClient(mongo_url, tz_aware=True)
    db = client[f"writes_{prefix}"]
    legacy_click = {"_id": ObjectId(), "day": day, "job": object_id(job.entity), "url": url,
                    "usr": object_id(usr.entity), "guids": "legacy-1", "n": 0, "last": day}
    db["event-email-clicks"].insert_one(legacy_click)
    db["email-sends"].insert_one({"_id": object_id(send), "entity": send, "externalSource": "legacy"})
    db["url-acknowledgments"].insert_many(url_acknowledgment_docs(dataset))
    # the expectation: the refused documents as seeded, their rows unprocessed
    del expected.docs["event-email-clicks"][click_key]
    expected.docs["email-sends"][send] = {"entity": send, "externalSource": "legacy"}
    expected.processed[tenant] -= click_rows
    run = Run(dataset, expected, db.name, prefix)
    emulator = EmulatorThread(dataset)
    run.url = emulator.start()
    # with the failure, no row is read again from SFMC in time: only Kafka can bring the failed batch back
    hook = {} if fail_once is None else {"LEADS_TEST_FAIL_ONCE": str(fail_once), "LEADS_REACK_AFTER_SECONDS": "3600"}
    env = worker_env(dataset, run.url, kafka_url=kafka_url, mongo_url=mongo_url, database=db.name, prefix=prefix,
                     **hook)
    try:
        run.workers.append(Worker(env, tmp_path, name=prefix))
        if fail_once is not None:
            _fail_once(run.workers[0], fail_once)
        run.workers[0].start()
        drain(run, db, run.workers)
        wait_for_dead_letters(run, kafka_bootstrap)
        if fail_once is None:
            # time passes beyond LEADS_REACK_AFTER_SECONDS and a poll, so the click's rows are read again, and
            # they must still not be acked: ingest drops those readings (the rows are unwritten) without any
            # output, so no condition shows that one was handled; what is tested is that nothing acks them
            time.sleep(REREAD)
        collect(run, db)
        worker = run.workers[0].process
        assert worker is not None and worker.poll() is None, "the worker stopped"
        stop_workers(run)
        assert worker.returncode == 0, run.workers[0].log()[-3000:]
        letters = dead_letters(run, kafka_bootstrap)
    finally:
        stop_workers(run)
        emulator.stop()
    try:
        unprocessed = {row["ID"] for row in run.rows[tenant] if row.get("Processed") != "True"}
        assert click_rows <= unprocessed, "a row of the refused click document was marked processed"
        written = {letter["source"]["event"]["row_id"]: letter["reason"] for letter in letters
                   if letter["stage"] == "write-clicks"}
        assert set(written) == click_rows
        assert all("Cannot apply $addToSet to non-array field" in reason for reason in written.values()), written
        # once; or again, when the failing worker stopped before the models sink's batch was committed
        refused_sends = [letter for letter in letters if letter["stage"] == "write-models"]
        assert refused_sends and (fail_once or len(refused_sends) == 1), refused_sends
        assert all(letter["source"] == {"entity": send} and "(code 28)" in letter["reason"]
                   for letter in refused_sends), refused_sends
        clicks = run.docs["event-email-clicks"]
        assert [doc for doc in clicks if doc["_id"] == legacy_click["_id"]] == [legacy_click]
        run.docs["event-email-clicks"] = [doc for doc in clicks if doc["_id"] != legacy_click["_id"]]
        assert_documents(run)
    finally:
        client.drop_database(db.name)
        client.close()
