"""The seen-rows table's index: lookups within the TTL, the latest handling wins after recovery, expiry; the
RocksDB row index itself."""

from pathlib import Path

import faust
import pytest

from streams.tables.row_index import RowIndex
from streams.tables.seen_rows import Outcome, SeenRows

TTL = 3600.0
app = faust.App("seen-rows-unit")


@pytest.fixture
def seen(tmp_path: Path) -> SeenRows:
    # the table in memory, its index in RocksDB (a bare "memory://" is falsy to faust, which then takes the
    # app's store)
    return SeenRows(app, name="seen-rows-unit", beacon=app.tables.beacon, key_type=str, store="memory://unit",
                    ttl=TTL, index=RowIndex(tmp_path / "index", TTL))


def test_lookup_within_ttl_only(seen: SeenRows) -> None:
    seen._index.put([("ien:a", Outcome.EVENT), ("ien:b", Outcome.BAD)], at=1000.0)
    assert seen.lookup(["ien:a", "ien:b", "ien:c"], 1000.0 + TTL - 1) == [
        (Outcome.EVENT, 1000.0), (Outcome.BAD, 1000.0), None]
    assert seen.lookup(["ien:a", "ien:a"], 1000.0 + TTL) == [None, None]
    assert seen.lookup([], 1000.0) == []


async def test_recovery_rebuilds_the_index_latest_handling_first(seen: SeenRows) -> None:
    seen._index.put([("ien:stale", Outcome.EVENT)], at=500.0)  # not in the table: gone after the rebuild
    # as the changelog restores them: the later record handled row a again (a re-ack), met first
    seen.data["1:7"] = {"at": 2000.0, "rows": {"ien:a": int(Outcome.EVENT)}}
    seen.data["1:3"] = {"at": 1000.0, "rows": {"ien:a": int(Outcome.REFUSED), "ien:b": int(Outcome.SKIPPED)}}
    await seen.on_recovery_completed(set(), set())
    assert seen.lookup(["ien:a", "ien:b", "ien:stale"], 2001.0) == [
        (Outcome.EVENT, 2000.0), (Outcome.SKIPPED, 1000.0), None]


async def test_recovery_on_a_first_start_meets_no_index_directory_yet(tmp_path: Path) -> None:
    index = RowIndex(tmp_path / "absent" / "index", TTL)
    seen = SeenRows(app, name="seen-rows-first", beacon=app.tables.beacon, key_type=str, store="memory://first",
                    ttl=TTL, index=index)
    await seen.on_recovery_completed(set(), set())
    assert seen.lookup(["ien:a"], 1000.0) == [None]
    seen.data["0:1"] = {"at": 1000.0, "rows": {"ien:a": int(Outcome.EVENT)}}
    await seen.on_recovery_completed(set(), set())
    assert seen.lookup(["ien:a"], 1000.0) == [(Outcome.EVENT, 1000.0)]
    index.close()


async def test_expire_drops_old_records_and_lookups_stop_at_the_ttl(seen: SeenRows) -> None:
    seen.data["0:1"] = {"at": 1000.0, "rows": {"ien:old": int(Outcome.EVENT)}}
    seen.data["0:2"] = {"at": 5000.0, "rows": {"ien:new": int(Outcome.EVENT)}}
    await seen.on_recovery_completed(set(), set())
    seen.expire(1000.0 + TTL)
    assert list(seen.data.keys()) == ["0:2"]
    assert seen.lookup(["ien:old", "ien:new"], 1000.0 + TTL) == [None, (Outcome.EVENT, 5000.0)]


def test_row_index_round_trips_outcomes_and_times_to_the_millisecond(tmp_path: Path) -> None:
    index = RowIndex(tmp_path / "index", ttl=60.0)
    assert index.get(["ien:a"]) == [None]
    index.put([(f"ien:{outcome}", outcome) for outcome in range(8)], at=1_764_650_000.123)
    assert index.get([f"ien:{outcome}" for outcome in range(8)]) == [(outcome, 1_764_650_000.123)
                                                                     for outcome in range(8)]
    index.put([("ien:3", 1)], at=1_764_650_001.0)  # written again: the latest wins
    index.keep_latest([("ien:3", 2), ("ien:4", 2)], at=1_764_650_000.5)  # older than ien:3's, newer than ien:4's
    assert index.get(["ien:3", "ien:4"]) == [(1, 1_764_650_001.0), (2, 1_764_650_000.5)]
    index.close()
    assert index.get(["ien:3"]) == [None]
    index.close()


def test_row_index_starts_empty_whatever_an_earlier_process_left(tmp_path: Path) -> None:
    first = RowIndex(tmp_path / "index", ttl=60.0)
    first.put([("ien:a", 1)], at=1000.0)
    first.close()
    assert RowIndex(tmp_path / "index", ttl=60.0).get(["ien:a"]) == [None]
