"""Raw aiokafka consume-and-produce of the pipeline's ``click-rows`` messages: the Kafka ceiling.

The same records the poller writes (the rows of one send from one 2,500-row page, JSON) are produced to
a fresh topic; the timed part consumes them, decodes each with orjson, re-encodes it and produces it to a
second topic (not awaiting each send; flushed per fetched batch), until every message is through.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import defaultdict
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic


def rows_by_send(rows: list[dict[str, str]]) -> dict[str, list[dict[str, str]]]:
    by_send: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        by_send[(row.get("JobID") or "").strip()].append(row)
    return by_send


def messages_of(dataset: dict[str, Any], page: int = 2500) -> list[tuple[bytes, bytes, int]]:
    """(key, value, rows) per ``click-rows`` record of the rows of one send from one page: the record shape
    until 2026-11-30 (the worker's records now hold a page's rows per partition), kept as the fixed
    reference of faust's per-record cost that the dry/raw ratio has measured since issue 6."""
    out = []
    for unit in dataset["units"]:
        rows = unit["rows"]
        for i in range(0, len(rows), page):
            for job_id, job_rows in rows_by_send(rows[i : i + page]).items():
                value = {"tenant": unit["tenant"], "rows": job_rows, "read_at": time.time(), "source": "sfmc"}
                out.append((f"{unit['tenant']}:{job_id}".encode(), orjson.dumps(value), len(job_rows)))
    return out


async def run_raw(bootstrap: str, dataset: dict[str, Any], partitions: int = 4) -> dict[str, Any]:
    name = f"bench-raw-{uuid.uuid4().hex[:8]}"
    source, sink = f"{name}.in", f"{name}.out"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, partitions, 1) for t in (source, sink)])
        messages = messages_of(dataset)
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_request_size=16 * 1024 * 1024)
        await producer.start()
        try:
            for key, value, _ in messages:
                await producer.send(source, value, key=key)
            await producer.flush()
            consumer = AIOKafkaConsumer(source, bootstrap_servers=bootstrap, group_id=f"{name}-g",
                                        auto_offset_reset="earliest", enable_auto_commit=False,
                                        fetch_max_bytes=64 * 1024 * 1024, max_partition_fetch_bytes=16 * 1024 * 1024)
            await consumer.start()
            try:
                total, rows, started = len(messages), 0, time.perf_counter()
                done = 0
                while done < total:
                    fetched = await consumer.getmany(timeout_ms=1000)
                    for batch in fetched.values():
                        for message in batch:
                            record = orjson.loads(message.value)
                            rows += len(record["rows"])
                            await producer.send(sink, orjson.dumps(record), key=message.key)
                            done += 1
                    await producer.flush()
                    await consumer.commit()
                seconds = time.perf_counter() - started
            finally:
                await consumer.stop()
        finally:
            await producer.stop()
        return {"messages": total, "rows": rows, "seconds": seconds, "rows_per_s": rows / seconds}
    finally:
        with contextlib.suppress(Exception):
            await admin.delete_topics([source, sink])
        await admin.close()


if __name__ == "__main__":
    import json
    import sys

    from sfmc_emulator import Sizes, generate

    data = generate(Sizes(rows=int(sys.argv[1]) if len(sys.argv) > 1 else 20000), 1)
    print(json.dumps(asyncio.run(run_raw("127.0.0.1:19092", data))))
