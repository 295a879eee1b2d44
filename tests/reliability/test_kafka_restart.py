"""Issue 7.4: the Kafka broker restarted mid-run: the worker reconnects by itself (same process, no
restart by the test) and the end state is the clean run's."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pymongo import MongoClient

from tests.reliability.runs import (
    assert_end_state,
    begin,
    finish,
    small_dataset,
    wait_partly_processed,
)

pytestmark = pytest.mark.stack


def test_kafka_restart(stages: list, stack_outage, tmp_path: Path, client: MongoClient, kafka_url: str,
                       mongo_url: str, kafka_bootstrap: str) -> None:
    stage = begin(small_dataset(seed=51), tmp_path, client, kafka_url, mongo_url)
    stages.append(stage)
    worker = stage.run.workers[0]
    before = wait_partly_processed(stage, 1 / 3)
    startup = stack_outage.restart("kafka")
    restarted = time.monotonic()
    assert before < stage.wanted(), "the worker finished before the broker restart: nothing to test"
    # the same process must carry on: finish() fails if the worker exits
    finish(stage, client, timeout=240)
    assert worker.process is not None and worker.process.poll() is None, "the worker exited"
    print(f"\nkafka restarted in {startup:.1f}s; the worker drained {time.monotonic() - restarted:.0f}s later")
    crashes = [line for line in worker.log().splitlines() if "Crashed reason=" in line]
    assert not crashes, f"agent crashes: {crashes[:3]}"
    # the restart may make the worker re-read uncommitted click-rows: ingest dead letters may repeat
    assert_end_state(stage, kafka_bootstrap, dead_letters_exact=False)
