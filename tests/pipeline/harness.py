"""Run real worker processes against the local stack and an in-process SFMC emulator."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from stack.demo import business_units

ROOT = Path(__file__).resolve().parents[2]
WORKER_COMMAND = (sys.executable, "-m", "streams", "worker", "-l", "info")


def worker_env(dataset: dict[str, Any], emulator_url: str, *, kafka_url: str, mongo_url: str, database: str,
               prefix: str, **extra: str) -> dict[str, str]:
    """Settings for a worker reading every BU of ``dataset`` from the emulator at ``emulator_url``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LEADS_")}
    env.update({
        "LEADS_BUSINESS_UNITS": json.dumps(business_units(dataset, emulator_url)),
        "LEADS_BROKER": kafka_url,
        "LEADS_MONGO_URL": mongo_url,
        "LEADS_MONGO_DATABASE": database,
        "LEADS_APP_ID": f"leads-test-{prefix}",
        "LEADS_TOPIC_PREFIX": f"{prefix}.",
        "LEADS_POLL_INTERVAL": "2",
        "LEADS_LOOKBACK_SECONDS": str(20 * 365 * 24 * 3600),
        "LEADS_FETCH_WINDOW": "0.3",
        "LEADS_CHAINED_FETCH_WINDOW": "0.3",
        "LEADS_SINK_WITHIN": "0.3",
        "LEADS_REACK_AFTER_SECONDS": "10",
        **extra,
    })
    return env


class Worker:
    """One ``leads-sync worker`` process (or another faust app's, ``command``); its output goes to a log file
    under ``tmp``."""

    def __init__(self, env: dict[str, str], tmp: Path, name: str = "worker", web_port: int = 0,
                 command: Sequence[str] = WORKER_COMMAND) -> None:
        self.env = {**env, "LEADS_DATA_DIR": str(tmp / f"{name}-data"),
                    "LEADS_WEB_PORT": str(web_port or _free_port())}
        self.log_path = tmp / f"{name}.log"
        self.command = command
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unique_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def emulator_rows(emulator_url: str, client_id: str) -> list[dict[str, str]]:
    reply = httpx.get(f"{emulator_url.rstrip('/')}/_emulator/rows", params={"client_id": client_id})
    reply.raise_for_status()
    body = reply.json()
    return body["rows"] if isinstance(body, dict) else body


def wait_until(check: Callable[[], bool], timeout: float, what: str, workers: list[Worker],
               interval: float = 1.0, explain: Callable[[], str] | None = None) -> None:
    """Return once ``check()`` is true; raise ``AssertionError`` when a worker exits or ``timeout`` seconds
    pass (the message then carries ``explain()``, what was seen, and the tail of each worker's log)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        for worker in workers:
            if worker.process and worker.process.poll() is not None:
                raise AssertionError(f"worker exited with {worker.process.returncode}:\n{worker.log()[-4000:]}")
        time.sleep(interval)  # between polls
    raise AssertionError(_timed_out(what, explain, workers))


async def wait_until_async(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.01,
                           explain: Callable[[], str] | None = None) -> None:
    """``wait_until`` for work in the test's own event loop (no worker processes): polls ``check()`` every
    ``interval`` seconds, letting the loop run in between; ``AssertionError`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            raise AssertionError(_timed_out(what, explain, []))
        await asyncio.sleep(interval)


def _timed_out(what: str, explain: Callable[[], str] | None, workers: list[Worker]) -> str:
    seen = explain() if explain is not None else ""
    logs = "".join(f"\n--- {worker.log_path.name}, /status:\n{_status(worker)}\n--- {worker.log_path.name}:\n"
                   f"{worker.log()[-3000:]}" for worker in workers)
    return f"timed out waiting for {what}: {seen}{logs}"


def _status(worker: Worker) -> str:
    """The running worker's ``/status`` page (its counts per BU, each topic's lag), or why there is none."""
    if worker.process is None or worker.process.poll() is not None:
        return "(not running)"
    try:
        return httpx.get(f"http://127.0.0.1:{worker.env['LEADS_WEB_PORT']}/status", timeout=5).text[:4000]
    except httpx.HTTPError as exc:
        return f"(none: {exc!r})"


def emulator_counts(emulator_url: str) -> dict[str, Any]:
    reply = httpx.get(f"{emulator_url.rstrip('/')}/_emulator/counts")
    reply.raise_for_status()
    body: dict[str, Any] = reply.json()
    return body


def url_acknowledgment_docs(dataset: dict[str, Any]) -> list[dict[str, Any]]:
    """The dataset's acks as the link-tracking service stores them in ``url-acknowledgments``."""
    from bson import ObjectId

    return [{"shortId": doc["shortId"], "urlIds": [ObjectId(url) for url in doc["urlIds"]]}
            for doc in dataset["url_acknowledgments"]]


async def read_topic(bootstrap: str, topic: str, timeout: float = 30) -> list[dict[str, Any]]:
    """Every record of ``topic`` from the beginning up to its current end, as ``{key, value}`` (JSON values)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        records: list[dict[str, Any]] = []
        deadline = asyncio.get_running_loop().time() + timeout
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out reading {topic}")
            batch = await consumer.getmany(timeout_ms=1000)
            for messages in batch.values():
                for message in messages:
                    key = message.key.decode() if message.key else None
                    records.append({"key": key, "value": json.loads(message.value) if message.value else None})
        return records
    finally:
        await consumer.stop()
