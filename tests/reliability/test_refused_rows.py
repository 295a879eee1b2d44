"""Issue 14.5 through a real worker: a row SFMC refuses with 10006 is recorded in ``processed-events`` and
stays Ready, so every sweep reads it again; those readings are dropped (and counted in ``/metrics``), not
acked and refused again every ``LEADS_REACK_AFTER_SECONDS``."""

from __future__ import annotations

from pathlib import Path

import pytest
from pymongo import MongoClient

from sfmc_emulator import Config
from tests.pipeline.harness import emulator_counts
from tests.reliability.runs import assert_end_state, begin, finish, metric, small_dataset, wait_for, web_get

pytestmark = pytest.mark.stack

REACK_AFTER = 4.0


def test_refused_rows_are_dropped_not_acked_again(stages: list, tmp_path: Path, client: MongoClient, kafka_url: str,
                                                  mongo_url: str, kafka_bootstrap: str) -> None:
    dataset = small_dataset(seed=45, rows=600)
    unit = dataset["units"][0]
    tenant = unit["tenant"]
    stage = begin(dataset, tmp_path, client, kafka_url, mongo_url, config=Config(),
                  LEADS_REACK_AFTER_SECONDS=str(int(REACK_AFTER)))
    stages.append(stage)
    refused = stage.run.expected.docs["processed-events"]  # the row IDs SFMC refuses and we record
    assert refused, "the dataset has no row SFMC refuses: nothing to test"
    finish(stage, client)
    assert_end_state(stage, kafka_bootstrap)
    worker = stage.run.workers[0]

    def sample() -> tuple[float, int, float]:
        """(10006 answers the worker got, rowset calls SFMC got, readings of refused rows dropped)."""
        text = web_get(worker, "/metrics").text
        return (metric(text, "leads_ack_10006_fallbacks_total", tenant=tenant),
                emulator_counts(stage.url)["total"].get("rest:rowset", 0),
                metric(text, "leads_refused_rows_dropped_total", tenant=tenant))

    # the sweeps since the refusals read the refused rows again, and drop them
    wait_for(lambda: sample()[2] >= len(refused), 6 * REACK_AFTER, "the refused rows' readings to be dropped",
             stage.alive())
    fallbacks, rowsets, dropped = sample()
    assert fallbacks >= len(refused), (fallbacks, sorted(refused))
    # three more reack periods: every sweep reads the refused rows again, and none is acked again
    wait_for(lambda: sample()[2] >= dropped + 2 * len(refused), 6 * REACK_AFTER,
             "two more sweeps over the refused rows", stage.alive())
    assert sample()[:2] == (fallbacks, rowsets), "refused rows were acked (and refused) again"
    status = web_get(worker, "/status").json()
    assert status["refused_rows_dropped"][tenant] >= dropped + 2 * len(refused), status["refused_rows_dropped"]
