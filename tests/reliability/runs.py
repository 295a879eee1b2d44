"""Runs of real workers against the local stack and an in-process SFMC emulator, for the reliability tests.

Builds on ``tests/pipeline`` (harness, expected documents, the end-to-end comparison helpers): a run here
is the end-to-end test's ``Run`` with more knobs (emulator config, extra worker settings, several workers,
fixed web ports).
"""

from __future__ import annotations

import re
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from pymongo import MongoClient

from sfmc_emulator import Config, EmulatorThread, Sizes
from tests.pipeline.expected import expected_documents
from tests.pipeline.harness import (
    Worker,
    _free_port,
    emulator_rows,
    unique_prefix,
    url_acknowledgment_docs,
    wait_until,
    worker_env,
)
from tests.pipeline.test_end_to_end import (
    Run,
    _processed_ids,
    assert_documents,
    collect,
    dead_letter_keys,
    dead_letters,
    drain,
    expected_dead_letter_keys,
    make_dataset,
    stop_workers,
    wait_for_dead_letters,
)

__all__ = [
    "Run",
    "assert_documents",
    "collect",
    "dead_letter_keys",
    "dead_letters",
    "drain",
    "expected_dead_letter_keys",
    "make_dataset",
    "processed_ids",
    "stop_workers",
]

SESSION_TIMEOUT = "8"  # seconds before Kafka evicts a SIGKILLed member (faust's default is 60)
SMALL = Sizes(rows=1500, sends=20, subscribers=300, emails=8, categories=6, days=2)

processed_ids = _processed_ids


def small_dataset(seed: int, rows: int = 1500) -> dict[str, Any]:
    sizes = Sizes(rows=rows, sends=SMALL.sends, subscribers=SMALL.subscribers, emails=SMALL.emails,
                  categories=SMALL.categories, days=SMALL.days)
    return make_dataset(sizes, seed=seed)


class Stage:
    """One run: the emulator thread, the worker settings and the workers started so far."""

    def __init__(self, run: Run, emulator: EmulatorThread, env: dict[str, str], tmp: Path) -> None:
        self.run = run
        self.emulator = emulator
        self.env = env
        self.tmp = tmp

    @property
    def url(self) -> str:
        return self.run.url

    @property
    def kafka_bootstrap(self) -> str:
        return self.env["LEADS_BROKER"].removeprefix("kafka://")

    @property
    def unit(self) -> dict[str, Any]:
        return self.run.dataset["units"][0]

    def add_worker(self, name: str | None = None, web_port: int = 0, **extra: str) -> Worker:
        index = len(self.run.workers) + 1
        worker = Worker({**self.env, **extra}, self.tmp, name=name or f"{self.run.prefix}-{index}",
                        web_port=web_port or _free_port())
        self.run.workers.append(worker.start())
        return worker

    def alive(self) -> list[Worker]:
        return [w for w in self.run.workers if w.process is not None and w.process.poll() is None]

    def processed(self) -> set[str]:
        return processed_ids(emulator_rows(self.url, self.unit["client_id"]))

    def wanted(self) -> set[str]:
        return self.run.expected.processed[self.unit["tenant"]]

    def configure(self, **knobs: Any) -> dict[str, Any]:
        reply = httpx.post(f"{self.url}_emulator/config", json=knobs)
        reply.raise_for_status()
        body: dict[str, Any] = reply.json()
        return body

    def stop(self) -> None:
        stop_workers(self.run)
        self.emulator.stop()


def paced(**knobs: Any) -> Config:
    """Emulator knobs that spread a 1,500-row run over several seconds (pages of 100 rows, slow calls),
    so a fault injected once a third of the rows are processed lands mid-run."""
    config = Config(latency_ms={"soap": 200.0, "rest": 250.0, "token": 0.0})
    config.update(knobs)
    return config


def begin(dataset: dict[str, Any], tmp: Path, client: MongoClient, kafka_url: str, mongo_url: str, *,
          config: Config | None = None, workers: int = 1, expected: Any = None, **extra: str) -> Stage:
    """Start the emulator (``config``, default ``paced()``) and ``workers`` workers; ``extra`` are more
    ``LEADS_*`` settings (default ``LEADS_PAGE_SIZE=100``)."""
    config = config or paced()
    extra = {"LEADS_PAGE_SIZE": "100", **extra}
    prefix = unique_prefix()
    database = f"rel_{prefix}"
    run = Run(dataset, expected or expected_documents(dataset), database, prefix)
    client[database]["url-acknowledgments"].insert_many(url_acknowledgment_docs(dataset))
    emulator = EmulatorThread(dataset, config)
    run.url = emulator.start()
    env = worker_env(dataset, run.url, kafka_url=kafka_url, mongo_url=mongo_url, database=database,
                     prefix=prefix, LEADS_BROKER_SESSION_TIMEOUT=SESSION_TIMEOUT, **extra)
    stage = Stage(run, emulator, env, tmp)
    try:
        for _ in range(workers):
            stage.add_worker()
    except BaseException:
        stage.stop()
        raise
    return stage


def wait_for(check: Any, timeout: float, what: str, workers: list[Worker]) -> None:
    """The harness's ``wait_until``, polling twice a second."""
    wait_until(check, timeout, what, workers, interval=0.5)


def wait_partly_processed(stage: Stage, share: float, timeout: float = 120) -> set[str]:
    want = stage.wanted()
    wait_for(lambda: len(stage.processed() & want) >= len(want) * share, timeout,
             f"{share:.0%} of the rows to be processed", stage.alive())
    return stage.processed() & want


def kill(worker: Worker) -> None:
    assert worker.process is not None
    worker.process.send_signal(signal.SIGKILL)
    worker.process.wait(30)


def guid_counts(run: Run) -> Counter[str]:
    """How many click documents name each row ID (in ``guids`` or ``bots``, or twice in one)."""
    seen: Counter[str] = Counter()
    for doc in run.docs["event-email-clicks"]:
        for name in ("guids", "bots"):
            seen.update(doc.get(name) or [])
    return seen


def assert_end_state(stage: Stage, kafka_bootstrap: str, *, dead_letters_exact: bool = True) -> None:
    """After ``finish``: documents equal the clean expectation; every valid row Processed, no bad one; no guid
    twice; every expected dead letter present (exactly once each unless ``dead_letters_exact`` is False)."""
    run = stage.run
    assert_documents(run)
    twice = {guid: n for guid, n in guid_counts(run).items() if n > 1}
    assert not twice, f"row IDs counted in more than one click document or list: {list(twice.items())[:5]}"
    for unit in run.dataset["units"]:
        tenant = unit["tenant"]
        done = processed_ids(run.rows[tenant])
        missing = run.expected.processed[tenant] - done
        wrongly = run.expected.unprocessed[tenant] & done
        assert not missing, f"{len(missing)} valid rows never marked processed, first {sorted(missing)[:5]}"
        assert not wrongly, f"{len(wrongly)} bad/refused rows marked processed, first {sorted(wrongly)[:5]}"
    want = expected_dead_letter_keys(run.expected)  # finish() waited for them
    got = dead_letter_keys(dead_letters(run, kafka_bootstrap))
    lost = set(want) - set(got)
    assert not lost, f"{len(lost)} dead letters lost, first {sorted(lost)[:3]}"
    if dead_letters_exact:
        unexpected = set(got) - set(want)
        assert not unexpected, f"{len(unexpected)} unexpected dead letters, first {sorted(unexpected)[:3]}"


def finish(stage: Stage, client: MongoClient, timeout: float = 180) -> None:
    """Drain with the live workers, wait until the unknown sends' retries are spent (their dead letters are in
    Kafka), then read the end state."""
    run = stage.run
    drain(run, client[run.database], stage.alive(), timeout)
    wait_for_dead_letters(run, stage.kafka_bootstrap, stage.alive())
    collect(run, client[run.database])


def fetched_again(stage: Stage) -> dict[str, list[float]]:
    """The entities the emulator returned more than once (``{type}*{id}`` → when, epoch seconds)."""
    reply = httpx.get(f"{stage.url}_emulator/returns")
    reply.raise_for_status()
    returns: dict[str, list[float]] = reply.json().get(stage.unit["client_id"], {})
    return {key: times for key, times in returns.items() if len(times) > 1}


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` in Prometheus text whose labels include ``labels`` (0 if none)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        match = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(3))
    return total


def web_get(worker: Worker, path: str, token: str | None = None, timeout: float = 10) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"http://127.0.0.1:{worker.env['LEADS_WEB_PORT']}{path}", headers=headers, timeout=timeout)


def is_leader(worker: Worker) -> bool:
    try:
        reply = web_get(worker, "/metrics", worker.env.get("LEADS_WEB_TOKEN"))
    except httpx.HTTPError:
        return False
    return reply.status_code == 200 and metric(reply.text, "leads_worker_is_leader") == 1


def has_partitions(worker: Worker) -> bool:
    """``/health``: the worker holds partitions and is not rebalancing."""
    try:
        reply = web_get(worker, "/health")
    except httpx.HTTPError:
        return False
    return reply.status_code == 200 and not reply.json().get("rebalancing")
