"""Issue 11: a worker restarted on its local RocksDB state (the same ``LEADS_DATA_DIR``) reads no whole changelog
and asks SFMC for no entity it already has."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from sfmc_emulator import Config
from tests.pipeline.harness import Worker, emulator_counts
from tests.reliability.runs import Stage, assert_end_state, begin, finish, kill, small_dataset, wait_for

pytestmark = pytest.mark.stack

READY = "Worker ready"
RECOVERING = "Restoring state from changelog topics"


def returned(stage: Stage) -> dict[str, int]:
    """The emulator's counts of entities returned, by type (``returned:Send`` …; not the click-log rows)."""
    counts: dict[str, int] = emulator_counts(stage.url)["total"]
    return {name: count for name, count in counts.items()
            if name.startswith("returned:") and name != "returned:DataExtensionObject"}


def restart(stage: Stage, name: str) -> tuple[Worker, str]:
    """Start a worker on ``name``'s data directory; once faust says it is ready, it and its log since start."""
    log_path = stage.tmp / f"{name}.log"
    start = log_path.stat().st_size if log_path.exists() else 0
    worker = stage.add_worker(name=name)

    def since_start() -> str:
        return log_path.read_bytes()[start:].decode(errors="replace")

    wait_for(lambda: READY in since_start(), 120, "the restarted worker to be ready", [worker])
    return worker, since_start()


def test_restart_on_local_state(stages: list, tmp_path: Path, client: MongoClient, kafka_url: str, mongo_url: str,
                                kafka_bootstrap: str) -> None:
    """Run a dataset to its end, then restart the worker on its data directory after SIGTERM (it reads no
    changelog at all) and after SIGKILL (at most the changelogs' tails): no entity is fetched from SFMC again,
    and the end state is the clean run's."""
    stage = begin(small_dataset(seed=24), tmp_path, client, kafka_url, mongo_url, config=Config())
    stages.append(stage)
    first = stage.run.workers[0]
    name = f"{stage.run.prefix}-1"
    finish(stage, client)
    fetched = returned(stage)
    assert fetched, "the run fetched no entity: nothing to keep"

    first.stop(signal.SIGTERM)
    assert first.process is not None and first.process.returncode == 0, first.log()[-3000:]
    second, log = restart(stage, name)
    assert RECOVERING not in log, "a worker restarted after SIGTERM read changelogs:\n" + _recovery(log)

    kill(second)
    _third, log = restart(stage, name)
    print("\nrecovery after SIGKILL:\n" + _recovery(log))

    finish(stage, client)
    assert returned(stage) == fetched, "entities were fetched again after the restarts"
    # a killed worker's uncommitted records are read again, so an ingest dead letter may repeat
    assert_end_state(stage, kafka_bootstrap, dead_letters_exact=False)


def _recovery(log: str) -> str:
    """The recovery lines of a worker log (faust's offsets table among them)."""
    lines: list[Any] = [line for line in log.splitlines() if "Recovery" in line or "changelog" in line]
    return "\n".join(lines[:60])
