"""Issue 14.4 against the real broker: ``leads-sync replay-dead-letters`` requeues each dead letter once (a
consumer group per stage remembers which), handles every stage, and reports what it skipped and why; an
``ack`` letter of the old SQS-egress shape (``{queue, body}``) is reported, not a KeyError; a letter skipped
because its tenant was not configured is requeued by a run after the fix; a letter of an unknown stage is
reported. With a worker: refused click and model documents, once fixed, are written through their requeued
``write-clicks`` and ``write-models`` letters, and the click rows acked."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from bson import ObjectId
from pymongo import MongoClient

from sfmc_emulator import EmulatorThread
from streams.entity_ids import object_id
from tests.edges.helpers import clean_dataset
from tests.pipeline import harness
from tests.pipeline.expected import expected_documents
from tests.pipeline.harness import ROOT, read_topic, unique_prefix, worker_env

pytestmark = pytest.mark.stack


def _letter(stage: str, tenant: str, source: dict[str, Any]) -> dict[str, Any]:
    return {"stage": stage, "reason": "a test letter", "tenant": tenant, "source": source, "at": 0.0}


async def _produce(bootstrap: str, topic: str, letters: list[dict[str, Any] | bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for letter in letters:
            value = letter if isinstance(letter, bytes) else orjson.dumps(letter)
            await producer.send_and_wait(topic, value, key=b"test")
    finally:
        await producer.stop()


def _requeue(env: dict[str, str], *args: str) -> dict[str, Any]:
    result = subprocess.run([sys.executable, "-m", "streams", "replay-dead-letters", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    report: dict[str, Any] = orjson.loads(result.stdout.strip().splitlines()[-1])
    return report


def _values(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    return [record["value"] for record in asyncio.run(read_topic(bootstrap, topic))]


def test_requeue_each_letter_once_and_report_skips(tmp_path: Path, kafka_url: str, kafka_bootstrap: str,
                                                   mongo_url: str) -> None:
    dataset = clean_dataset(seed=14, rows=20)
    unit = dataset["units"][0]
    tenant = unit["tenant"]
    row, other, third = unit["rows"][0], unit["rows"][1], unit["rows"][3]
    keys = {name: row[name] for name in ("ID", "JobID", "SubscriberID", "EventDate", "IsUnique", "ListID")}
    prefix = unique_prefix()
    env = worker_env(dataset, "http://127.0.0.1:9/", kafka_url=kafka_url, mongo_url=mongo_url,
                     database=f"requeue_{prefix}", prefix=prefix)
    topic = f"{prefix}.dead-letter"
    ack_body = orjson.dumps({"tenant": tenant, "status": "processed", "reason": "", "rows": [keys]}).decode()
    click = [row["ID"], f"mc.{tenant}.subscriber*{row['SubscriberID']}", "5f47e1c107809f52ef34357d", "k9",
             1583668800.0, 1583647200.0, False, keys]
    asyncio.run(_produce(kafka_bootstrap, topic, [
        _letter("ingest", tenant, row),
        _letter("resolve-send", tenant, {"entity": f"mc.{tenant}.send*424242"}),
        _letter("resolve-subscriber", tenant, {"entity": f"mc.{tenant}.subscriber*70000002"}),
        _letter("resolve-category", tenant, {"entity": f"mc.{tenant}.category*4421"}),
        _letter("write-models", tenant, {"entity": f"mc.{tenant}.send*607105"}),
        _letter("write-clicks", tenant, {"send": f"mc.{tenant}.send*{row['JobID']}",
                                         "event": dict(zip(CLICK_FIELDS, click, strict=True))}),
        _letter("ack", tenant, {"keys": keys}),
        # what the SQS ack egress wrote before stages had one shape each: no row keys to requeue
        _letter("ack", tenant, {"queue": "acks", "body": ack_body}),
        _letter("acks-queue", tenant, {"queue": "q", "message_id": "m1", "body": ack_body}),
        _letter("kinesis", tenant, {"stream": "s", "shard": "0", "sequence": "1",
                                    "body": orjson.dumps({"tenant": tenant, "row": other}).decode()}),
        _letter("sqs", "", {"queue": "q", "message_id": "m2", "body": "{not json"}),
        _letter("sqs", "nobody", {"queue": "q", "message_id": "m3",
                                  "body": orjson.dumps({"tenant": "nobody", "row": third}).decode()}),
        _letter("resolve-widget", tenant, {"entity": f"mc.{tenant}.widget*1"}),  # a stage this version does not know
        b'{"stage": "ingest", "reason": "cut sh',  # not a letter at all
    ]))

    first = _requeue(env)
    assert first["requeued"] == {"ingest": 1, "resolve-send": 1, "resolve-subscriber": 1, "resolve-category": 1,
                                 "write-models": 1, "write-clicks": 1, "ack": 1, "acks-queue": 1, "kinesis": 1}, first
    (ack_reason,) = first["skipped"]["ack"]
    assert "'keys'" in ack_reason and first["skipped"]["ack"][ack_reason] == 1, first
    sqs_reasons = first["skipped"]["sqs"]
    assert sorted(sqs_reasons.values()) == [1, 1] and len(sqs_reasons) == 2, first
    assert any(reason.startswith("not JSON") for reason in sqs_reasons), first
    assert "tenant 'nobody' is not a configured business unit" in sqs_reasons, first
    assert first["skipped"]["resolve-widget"] == {"unknown stage resolve-widget": 1}, first
    assert first["skipped"]["unknown"] == {"not JSON": 1}, first
    assert set(first["skipped"]) == {"ack", "sqs", "resolve-widget", "unknown"}, first

    def requeued() -> dict[str, list[Any]]:
        def ids(name: str) -> list[str]:
            return sorted(ident for req in _values(kafka_bootstrap, f"{prefix}.{name}-requests")
                          for ident in req["ids"])

        return {
            "rows": sorted(f"{r['ID']}:{batch['source']}" for batch in _values(kafka_bootstrap, f"{prefix}.click-rows")
                           for r in batch["rows"]),
            "acks": [keys for batch in _values(kafka_bootstrap, f"{prefix}.acks") for keys in batch["rows"]],
            "clicks": [(send, event) for record in _values(kafka_bootstrap, f"{prefix}.click-events")
                       for send, events in record["sends"].items() for event in events],
            "send": ids("send"), "subscriber": ids("subscriber"), "category": ids("category"),
        }

    once = requeued()
    assert once == {
        "rows": sorted([f"{row['ID']}:dead-letter", f"{other['ID']}:dead-letter"]),
        "acks": [keys, keys],  # the ack letter and the acks-queue message
        "clicks": [(f"mc.{tenant}.send*{row['JobID']}", click)],
        "send": ["424242", "607105"], "subscriber": ["70000002"], "category": ["4421"],
    }

    # nothing is requeued twice; what could not be requeued is read and reported again, the unknown stage once
    skipped = {stage: reasons for stage, reasons in first["skipped"].items()
               if stage not in ("resolve-widget", "unknown")}
    assert _requeue(env) == {"requeued": {}, "skipped": skipped}
    assert requeued() == once

    # the tenant is configured since: its letter is requeued, once; the unreadable ones stay skipped
    units = [*json.loads(env["LEADS_BUSINESS_UNITS"])]
    fixed = {**env, "LEADS_BUSINESS_UNITS": json.dumps([*units, {**units[0], "tenant": "nobody"}])}
    still = {"ack": skipped["ack"], "sqs": {reason: 1 for reason in sqs_reasons if reason.startswith("not JSON")}}
    assert _requeue(fixed) == {"requeued": {"sqs": 1}, "skipped": still}
    assert _requeue(fixed) == {"requeued": {}, "skipped": still}
    assert requeued()["rows"] == sorted([*once["rows"], f"{third['ID']}:dead-letter"])

    # letters written since: a run for one stage takes only that stage's; the next run the others, once
    asyncio.run(_produce(kafka_bootstrap, topic, [
        _letter("ingest", tenant, unit["rows"][2]),
        _letter("resolve-email", tenant, {"entity": f"mc.{tenant}.email*77"}),
    ]))
    assert _requeue(fixed, "--stage", "ingest") == {"requeued": {"ingest": 1}, "skipped": {}}
    assert _requeue(fixed) == {"requeued": {"resolve-email": 1}, "skipped": still}
    assert _requeue(fixed) == {"requeued": {}, "skipped": still}
    assert len(requeued()["rows"]) == len(once["rows"]) + 2


CLICK_FIELDS = ("row_id", "subscriber", "url_id", "ack", "time", "day", "bot", "keys")  # ``ClickEvent``'s


def test_refused_documents_are_written_once_fixed_and_requeued(tmp_path: Path, kafka_url: str, kafka_bootstrap: str,
                                                               mongo_url: str) -> None:
    """A worker dead-letters the clicks of a click document whose ``guids`` is a string and a send document
    whose ``externalSource`` is a string, and leaves those rows unprocessed. The operator fixes both documents
    and runs ``replay-dead-letters``: the clicks land in the fixed document, their rows are acked, the send is
    fetched again and written."""
    dataset = clean_dataset(seed=15, rows=30)
    unit = dataset["units"][0]
    expected = expected_documents(dataset)
    (day, job, url, usr), doc = next((key, doc) for key, doc in expected.docs["event-email-clicks"].items()
                                     if doc["guids"])
    click_rows = {*doc["guids"], *doc.get("bots", ())}
    send = next(entity for entity in expected.docs["email-sends"] if entity not in expected.sending)
    prefix = unique_prefix()
    client: MongoClient = MongoClient(mongo_url, tz_aware=True)
    db = client[f"requeue_{prefix}"]
    legacy = {"_id": ObjectId(), "day": day, "job": object_id(job.entity), "url": url, "usr": object_id(usr.entity),
              "guids": "legacy-1", "n": 0, "last": day}
    db["event-email-clicks"].insert_one(legacy)
    db["email-sends"].insert_one({"_id": object_id(send), "entity": send, "externalSource": "legacy"})
    db["url-acknowledgments"].insert_many(harness.url_acknowledgment_docs(dataset))
    emulator = EmulatorThread(dataset)
    emulator_url = emulator.start()
    env = worker_env(dataset, emulator_url, kafka_url=kafka_url, mongo_url=mongo_url, database=db.name, prefix=prefix)
    worker = harness.Worker(env, tmp_path, name=prefix).start()

    def processed() -> set[str]:
        rows = harness.emulator_rows(emulator_url, unit["client_id"])
        return {row["ID"] for row in rows if row.get("Processed") == "True"}

    def letters() -> dict[str, set[str]]:
        found: dict[str, set[str]] = {"write-clicks": set(), "write-models": set()}
        for letter in _values(kafka_bootstrap, f"{prefix}.dead-letter"):
            if letter["stage"] == "write-clicks":
                found["write-clicks"].add(letter["source"]["event"]["row_id"])
            elif letter["stage"] == "write-models":
                found["write-models"].add(letter["source"]["entity"])
        return found

    try:
        everything = {row["ID"] for row in unit["rows"]}
        harness.wait_until(lambda: letters() == {"write-clicks": click_rows, "write-models": {send}}
                   and processed() == everything - click_rows, 120,
                   "the refused documents' dead letters and every other row processed", [worker],
                   explain=lambda: f"letters {letters()}, unprocessed {sorted(everything - processed())}")
        db["event-email-clicks"].update_one({"_id": legacy["_id"]}, {"$set": {"guids": ["legacy-1"]}})
        db["email-sends"].update_one({"_id": object_id(send)}, {"$unset": {"externalSource": ""}})
        report = _requeue(env, "--stage", "write-clicks")
        assert report["requeued"] == {"write-clicks": len(click_rows)}, report
        assert _requeue(env, "--stage", "write-models")["requeued"] == {"write-models": 1}

        def written() -> bool:
            fixed = db["event-email-clicks"].find_one({"_id": legacy["_id"]}) or {}
            sent = db["email-sends"].find_one({"_id": object_id(send)}) or {}
            return ({*fixed.get("guids", ()), *fixed.get("bots", ())} == {"legacy-1", *click_rows}
                    and sent.get("externalSource", {}).get("namespace") == "FuelSOAP:Send")

        harness.wait_until(lambda: written() and processed() == everything, 90,
                   "the requeued clicks and send written and their rows acked", [worker],
                   explain=lambda: f"unprocessed {sorted(everything - processed())}")
        assert db["event-email-clicks"].count_documents({"day": day, "job": legacy["job"], "url": url,
                                                         "usr": legacy["usr"]}) == 1
    finally:
        worker.stop()
        emulator.stop()
        client.drop_database(db.name)
        client.close()
