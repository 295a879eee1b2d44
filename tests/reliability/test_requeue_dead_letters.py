"""Issue 14.4 against the real broker: ``leads-sync replay-dead-letters`` requeues each dead letter once (a
consumer group per stage remembers how far), handles every stage, and reports what it skipped and why; an
``ack`` letter of the old SQS-egress shape (``{queue, body}``) is reported, not a KeyError."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from tests.edges.helpers import clean_dataset
from tests.pipeline.harness import ROOT, read_topic, unique_prefix, worker_env

pytestmark = pytest.mark.stack


def _letter(stage: str, tenant: str, source: dict[str, Any]) -> dict[str, Any]:
    return {"stage": stage, "reason": "a test letter", "tenant": tenant, "source": source, "at": 0.0}


async def _produce(bootstrap: str, topic: str, letters: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for letter in letters:
            await producer.send_and_wait(topic, orjson.dumps(letter), key=b"test")
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
    row, other = unit["rows"][0], unit["rows"][1]
    keys = {name: row[name] for name in ("ID", "JobID", "SubscriberID", "EventDate", "IsUnique", "ListID")}
    prefix = unique_prefix()
    env = worker_env(dataset, "http://127.0.0.1:9/", kafka_url=kafka_url, mongo_url=mongo_url,
                     database=f"requeue_{prefix}", prefix=prefix)
    topic = f"{prefix}.dead-letter"
    ack_body = orjson.dumps({"tenant": tenant, "status": "processed", "reason": "", "rows": [keys]}).decode()
    asyncio.run(_produce(kafka_bootstrap, topic, [
        _letter("ingest", tenant, row),
        _letter("resolve-send", tenant, {"entity": f"mc.{tenant}.send*424242"}),
        _letter("ack", tenant, {"keys": keys}),
        # what the SQS ack egress wrote before stages had one shape each: no row keys to requeue
        _letter("ack", tenant, {"queue": "acks", "body": ack_body}),
        _letter("acks-queue", tenant, {"queue": "q", "message_id": "m1", "body": ack_body}),
        _letter("kinesis", tenant, {"stream": "s", "shard": "0", "sequence": "1",
                                    "body": orjson.dumps({"tenant": tenant, "row": other}).decode()}),
        _letter("sqs", "", {"queue": "q", "message_id": "m2", "body": "{not json"}),
        _letter("sqs", "nobody", {"queue": "q", "message_id": "m3",
                                  "body": orjson.dumps({"tenant": "nobody", "row": other}).decode()}),
    ]))

    first = _requeue(env)
    assert first["requeued"] == {"ingest": 1, "resolve-send": 1, "ack": 1, "acks-queue": 1, "kinesis": 1}, first
    (ack_reason,) = first["skipped"]["ack"]
    assert "'keys'" in ack_reason and first["skipped"]["ack"][ack_reason] == 1, first
    sqs_reasons = first["skipped"]["sqs"]
    assert sorted(sqs_reasons.values()) == [1, 1] and len(sqs_reasons) == 2, first
    assert any(reason.startswith("not JSON") for reason in sqs_reasons), first
    assert "tenant 'nobody' is not a configured business unit" in sqs_reasons, first

    def requeued() -> tuple[list[str], list[dict[str, str]], list[str]]:
        rows = [(r["ID"], batch["source"]) for batch in _values(kafka_bootstrap, f"{prefix}.click-rows")
                for r in batch["rows"]]
        acks = [keys for batch in _values(kafka_bootstrap, f"{prefix}.acks") for keys in batch["rows"]]
        sends = [ident for req in _values(kafka_bootstrap, f"{prefix}.send-requests") for ident in req["ids"]]
        return sorted(f"{ident}:{source}" for ident, source in rows), acks, sends

    rows, acks, sends = requeued()
    assert rows == sorted([f"{row['ID']}:dead-letter", f"{other['ID']}:dead-letter"])
    assert acks == [keys, keys]  # the ack letter and the acks-queue message
    assert sends == ["424242"]

    second = _requeue(env)
    assert second == {"requeued": {}, "skipped": {}}, second
    assert requeued() == (rows, acks, sends)

    # letters written since: a run for one stage takes only that stage's; the next run the others, once
    asyncio.run(_produce(kafka_bootstrap, topic, [
        _letter("ingest", tenant, unit["rows"][2]),
        _letter("resolve-email", tenant, {"entity": f"mc.{tenant}.email*77"}),
    ]))
    assert _requeue(env, "--stage", "ingest") == {"requeued": {"ingest": 1}, "skipped": {}}
    assert _requeue(env) == {"requeued": {"resolve-email": 1}, "skipped": {}}
    assert _requeue(env) == {"requeued": {}, "skipped": {}}
    assert len(requeued()[0]) == len(rows) + 1
