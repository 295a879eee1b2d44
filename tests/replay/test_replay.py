"""Replay rebuilds the same documents from the event topics, with zero SFMC calls."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from pymongo import MongoClient

from sfmc_emulator import EmulatorThread, Sizes, generate
from streams.marketing_cloud.values import SERVER_TZ
from tests.pipeline.harness import (
    ROOT,
    Worker,
    emulator_rows,
    read_topic,
    unique_prefix,
    url_acknowledgment_docs,
    wait_until,
    worker_env,
)

# processed-events records SFMC's answers to acks, not events, so replay does not rebuild it
COLLECTIONS = ("identities", "email-categories", "email-deployments", "email-sends", "email-send-urls",
               "event-email-clicks")


def _documents(db: Any) -> dict[str, list[dict[str, Any]]]:
    return {name: sorted(db[name].find({}), key=lambda doc: str(doc["_id"])) for name in COLLECTIONS}


def _settled(db: Any, emulator_url: str, client_id: str, previous: list[Any]) -> bool:
    rows = emulator_rows(emulator_url, client_id)
    pending = [row for row in rows if row["Processed"] != "True" and row["ID"] not in _settled.exempt]
    counts = [db[name].count_documents({}) for name in COLLECTIONS]
    stable = counts == previous[-1] if previous else False
    previous.append(counts)
    return not pending and stable


OLD_CLICK_EVENT = {"ns": "streams.topic_records.ClickEvent"}
OLD_CLICK_EVENTS = {"ns": "streams.topic_records.ClickEvents"}


def old_shape(record: dict[str, Any]) -> list[dict[str, Any]]:
    """A ``click-events`` record as the versions before 2026-11-30 wrote it: one record per send, each click a
    faust record object (written out by hand here, as those versions serialized it)."""
    fields = ("row_id", "subscriber", "url_id", "ack", "time", "day", "bot", "keys")
    return [{"tenant": record["tenant"], "send": send,
             "events": [{**dict(zip(fields, values, strict=True)), "__faust": OLD_CLICK_EVENT} for values in events],
             "repeats": [], "__faust": OLD_CLICK_EVENTS}
            for send, events in record["sends"].items()]


async def copy_in_old_shapes(bootstrap: str, source: str, target: str) -> int:
    """Copy ``{source}click-events`` to ``{target}click-events`` in the old shape and ``{source}entity-changes``
    to ``{target}entity-changes`` as it is (its shape did not change); return the click records written."""
    written = 0
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for record in await read_topic(bootstrap, f"{source}click-events"):
            for old in old_shape(record["value"]):
                await producer.send_and_wait(f"{target}click-events", orjson.dumps(old), key=old["send"].encode())
                written += 1
        for record in await read_topic(bootstrap, f"{source}entity-changes"):
            await producer.send_and_wait(f"{target}entity-changes", orjson.dumps(record["value"]),
                                         key=(record["key"] or "").encode())
    finally:
        await producer.stop()
    return written


def replay_into(env: dict[str, str], database: str) -> None:
    result = subprocess.run([sys.executable, "-m", "streams", "replay", "--database", database],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"replayed"' in result.stdout
    assert "records" in result.stdout  # progress lines


@pytest.mark.stack
def test_replay_rebuilds_identical_documents(kafka_url: str, kafka_bootstrap: str, mongo_url: str,
                                             tmp_path: Path) -> None:
    """Replay into an empty database writes the live run's documents, without calling SFMC; so does a replay of
    the same events written in the record shapes of the versions before 2026-11-30 (issue 16: an upgraded
    deployment rebuilds from what the previous version wrote)."""
    dataset = generate(Sizes(rows=600, sends=12, subscribers=120, emails=6, categories=6), seed=7,
                       end=datetime.now(SERVER_TZ))
    unit = dataset["units"][0]
    kinds = unit["row_kinds"]
    # rows the pipeline leaves unprocessed on purpose: bad input and the 10006 rows
    _settled.exempt = set(kinds["bad_date"]) | set(unit["reject_row_ids"])  # type: ignore[attr-defined]
    prefix = unique_prefix()
    live_db, replay_db, old_db = f"live_{prefix}", f"replay_{prefix}", f"old_{prefix}"
    client: MongoClient = MongoClient(mongo_url)
    client[live_db]["url-acknowledgments"].insert_many(url_acknowledgment_docs(dataset))
    with EmulatorThread(dataset) as emulator:
        url = emulator.emulator.url
        env = worker_env(dataset, url, kafka_url=kafka_url, mongo_url=mongo_url, database=live_db, prefix=prefix)
        worker = Worker(env, tmp_path).start()
        try:
            history: list[Any] = []
            wait_until(lambda: _settled(client[live_db], url, unit["client_id"], history), 240,
                       "the live run to drain", [worker])
        finally:
            worker.stop()
        calls_before = httpx.get(f"{url}_emulator/counts").json()["total"]
        for database in (replay_db, old_db):
            client[database]["url-acknowledgments"].insert_many(client[live_db]["url-acknowledgments"].find({}))
        replay_into(env, replay_db)
        old_prefix = f"{prefix}old."
        assert asyncio.run(copy_in_old_shapes(kafka_bootstrap, env["LEADS_TOPIC_PREFIX"], old_prefix)) > 0
        replay_into({**env, "LEADS_TOPIC_PREFIX": old_prefix}, old_db)
        calls_after = httpx.get(f"{url}_emulator/counts").json()["total"]
    try:
        assert calls_after == calls_before, "replay called SFMC"
        live = _documents(client[live_db])
        for database in (replay_db, old_db):
            rebuilt = _documents(client[database])
            for name in COLLECTIONS:
                assert len(rebuilt[name]) == len(live[name]), (database, name)
                assert rebuilt[name] == live[name], f"{name} differs after the replay into {database}"
        assert live["event-email-clicks"] and live["email-sends"] and live["email-send-urls"]
    finally:
        for database in (live_db, replay_db, old_db):
            client.drop_database(database)
