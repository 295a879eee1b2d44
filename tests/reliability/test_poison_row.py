"""SPEC 6.5 end to end: one row whose EventDate is out of range (12/31/9999 11:59:59 PM, past datetime.max
once in UTC) among good rows of the same send: it is dead-lettered and left unprocessed, and nothing else
is lost or acknowledged without its click."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from pymongo import MongoClient

from tests.pipeline.expected import expected_documents
from tests.reliability.runs import assert_end_state, begin, finish, small_dataset

pytestmark = pytest.mark.stack


def test_out_of_range_date_is_dead_lettered(stages: list, tmp_path: Path, client: MongoClient, kafka_url: str,
                                            mongo_url: str, kafka_bootstrap: str) -> None:
    dataset = small_dataset(seed=71, rows=1000)
    unit = dataset["units"][0]
    ok = set(unit["row_kinds"]["ok"])
    model = next(row for row in unit["rows"] if row["ID"] in ok)
    poison = {**model, "ID": "poison-row-1", "EventDate": "12/31/9999 11:59:59 PM"}
    expected = expected_documents(copy.deepcopy(dataset))  # without the poison row
    unit["rows"].insert(unit["rows"].index(model), poison)
    expected.unprocessed[unit["tenant"]].add(poison["ID"])
    expected.dead_ingest[unit["tenant"], poison["ID"]] += 1
    stage = begin(dataset, tmp_path, client, kafka_url, mongo_url, expected=expected)
    stages.append(stage)
    finish(stage, client, timeout=40)
    crashes = [line for line in stage.run.workers[0].log().splitlines() if "Crashed reason=" in line]
    assert not crashes, f"agent crashes: {crashes[:3]}"
    assert_end_state(stage, kafka_bootstrap)
