"""Issue 7.2: SFMC misbehaving (429s with Retry-After, 500s, short-lived and revoked tokens, latency spikes,
rows refused with 10006): the end state is still the clean run's, and the retries show in ``/metrics``."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest
from pymongo import MongoClient

from tests.pipeline.harness import emulator_counts
from tests.reliability.runs import (
    assert_end_state,
    begin,
    finish,
    metric,
    paced,
    small_dataset,
    wait_partly_processed,
    web_get,
)

pytestmark = pytest.mark.stack


def sfmc_calls(url: str) -> int:
    """The SOAP and REST calls the emulator accepted so far (a call with a revoked token is refused uncounted)."""
    return sum(n for name, n in emulator_counts(url)["total"].items() if name.startswith(("soap:", "rest:")))


class Chaos(threading.Thread):
    """Every ``period`` seconds a latency spike goes on or off; as it goes off, every issued token is
    revoked (so about every 2 periods: a token is never revoked twice within one slow call). ``calls`` holds,
    per revocation, the calls accepted just before and just after it."""

    def __init__(self, url: str, period: float = 4.0) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.period = period
        self.done = threading.Event()
        self.expiries = 0
        self.spikes = 0
        self.calls: list[tuple[int, int]] = []

    def revocations_with_calls(self, final_calls: int) -> int:
        """Revocations after which SFMC accepted a call before the next one: each such call carried a token
        issued after that revocation, so each needed a refresh of its own. A revocation the pipeline never
        called SFMC after (its work done) needs none."""
        befores = [before for before, _ in self.calls[1:]] + [final_calls]
        return sum(later > after for (_, after), later in zip(self.calls, befores, strict=True))

    def run(self) -> None:
        spike = False
        while not self.done.wait(self.period):
            try:
                if spike:
                    before = sfmc_calls(self.url)
                    httpx.post(f"{self.url}_emulator/expire-tokens", timeout=5).raise_for_status()
                    self.calls.append((before, sfmc_calls(self.url)))
                    self.expiries += 1
                spike = not spike
                latency = {"soap": 1500.0, "rest": 1200.0, "token": 800.0} if spike else {
                    "soap": 200.0, "rest": 250.0, "token": 0.0}
                httpx.post(f"{self.url}_emulator/config", json={"latency_ms": latency}, timeout=5)
                self.spikes += spike
            except httpx.HTTPError:
                pass  # the emulator is stopping

    def stop(self) -> None:
        self.done.set()
        self.join(10)


def test_sfmc_faults(stages: list, tmp_path: Path, client: MongoClient, kafka_url: str, mongo_url: str,
                     kafka_bootstrap: str) -> None:
    dataset = small_dataset(seed=31)
    unit = dataset["units"][0]
    # a few more rows SFMC refuses to mark (10006): valid clicks, so they must land in processed-events
    extra = [row["ID"] for row in unit["rows"] if row["ID"] in set(unit["row_kinds"]["ok"])][:5]
    unit["reject_row_ids"] = sorted({*unit["reject_row_ids"], *extra})
    config = paced(rate_429=0.10, retry_after=1, rate_500=0.05, token_lifetime=30, seed=7)
    stage = begin(dataset, tmp_path, client, kafka_url, mongo_url, config=config, LEADS_PAGE_SIZE="300")
    stages.append(stage)
    chaos = Chaos(stage.url)
    chaos.start()
    try:
        wait_partly_processed(stage, 0.1, timeout=180)
        finish(stage, client, timeout=240)
    finally:
        chaos.stop()
    worker = stage.run.workers[0]
    text = web_get(worker, "/metrics").text
    counts = emulator_counts(stage.url)["total"]
    tenant = unit["tenant"]
    stats = {name: metric(text, f"leads_sfmc_{name}_total", tenant=tenant)
             for name in ("requests", "retries", "throttled", "token_refreshes")}
    fallbacks = metric(text, "leads_ack_10006_fallbacks_total", tenant=tenant)
    print(f"\nworker SFMC stats {stats}, 10006 fallbacks {fallbacks}; emulator {counts}; "
          f"tokens revoked {chaos.expiries} times, {chaos.spikes} latency spikes")
    assert chaos.expiries >= 2 and chaos.spikes >= 2, "the run ended before the faults had a chance"
    assert counts.get("http429", 0) > 0 and counts.get("http500", 0) > 0, counts
    crashes = [line for line in worker.log().splitlines() if "Crashed reason=" in line]
    assert not crashes, f"agent crashes: {crashes[:3]}"
    assert_end_state(stage, kafka_bootstrap)
    # the faults show in the worker's metrics
    assert stats["throttled"] == counts["http429"], (stats, counts)
    assert stats["retries"] >= counts["http429"] + counts["http500"] * 0.5, (stats, counts)
    assert stats["token_refreshes"] >= chaos.revocations_with_calls(sfmc_calls(stage.url)) >= 1, (stats, chaos.calls)
    assert stats["token_refreshes"] == counts.get("token"), (stats, counts)
    # each refused row that is acked (not a bad row, which stays unprocessed) is refused at least once; its
    # later readings are dropped (test_refused_rows.py), so the count need not grow beyond that
    refused = stage.run.expected.docs["processed-events"]
    assert fallbacks >= len(refused), (fallbacks, sorted(refused))
