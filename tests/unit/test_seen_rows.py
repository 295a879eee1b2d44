"""The seen-rows table's index: lookups within the TTL, the latest handling wins after recovery, expiry."""

import faust

from streams.tables.seen_rows import Outcome, RowIndex, SeenRows

TTL = 3600.0
app = faust.App("seen-rows-unit")


def table() -> SeenRows:
    # in memory: the index logic is under test (a bare "memory://" is falsy to faust, which then takes the app's store)
    return SeenRows(app, name="seen-rows-unit", beacon=app.tables.beacon, key_type=str, store="memory://unit",
                    ttl=TTL, index_size=1000)


def test_lookup_within_ttl_only() -> None:
    seen = table()
    seen._add([("ien:a", Outcome.EVENT), ("ien:b", Outcome.BAD)], at=1000.0)
    assert seen.lookup("ien:a", 1000.0 + TTL - 1) == (Outcome.EVENT, 1000.0)
    assert seen.lookup("ien:b", 1001.0) == (Outcome.BAD, 1000.0)
    assert seen.lookup("ien:a", 1000.0 + TTL) is None
    assert seen.lookup("ien:c", 1001.0) is None


async def test_recovery_rebuilds_the_index_latest_handling_first() -> None:
    seen = table()
    # as the changelog restores them: the later record handled row a again (a re-ack), after the earlier one
    seen.data["1:7"] = {"at": 2000.0, "rows": {"ien:a": int(Outcome.EVENT)}}
    seen.data["1:3"] = {"at": 1000.0, "rows": {"ien:a": int(Outcome.EVENT), "ien:b": int(Outcome.SKIPPED)}}
    await seen.on_recovery_completed(set(), set())
    assert seen.lookup("ien:a", 2001.0) == (Outcome.EVENT, 2000.0)
    assert seen.lookup("ien:b", 2001.0) == (Outcome.SKIPPED, 1000.0)


async def test_expire_forgets_old_records_and_rows() -> None:
    seen = table()
    seen.data["0:1"] = {"at": 1000.0, "rows": {"ien:old": int(Outcome.EVENT)}}
    seen.data["0:2"] = {"at": 5000.0, "rows": {"ien:new": int(Outcome.EVENT)}}
    await seen.on_recovery_completed(set(), set())
    seen.expire(1000.0 + TTL)
    assert list(seen.data.keys()) == ["0:2"]
    assert seen.lookup("ien:old", 1000.0) is None  # gone from the index, not only past its TTL
    assert seen.lookup("ien:new", 5001.0) == (Outcome.EVENT, 5000.0)


def test_row_index_keeps_the_newest_rows_up_to_its_capacity() -> None:
    index = RowIndex(capacity=100)
    for i in range(110):
        index.put(f"ien:{i}", int(Outcome.EVENT), 1000.0 + i)
    index.put("ien:0", int(Outcome.REFUSED), 2000.25)  # written again: the newest now
    assert len(index) == 110 and index.get("ien:0") == (Outcome.REFUSED, 2000.25)
    index.put("ien:110", int(Outcome.SKIPPED), 2001.0)  # past the capacity by a tenth: back to it
    assert len(index) == 100
    assert [i for i in range(111) if index.get(f"ien:{i}") is None] == list(range(1, 12))
    assert index.get("ien:12") == (Outcome.EVENT, 1012.0) and index.get("ien:110") == (Outcome.SKIPPED, 2001.0)
    index.forget_until(1109.0)
    assert {i for i in range(111) if index.get(f"ien:{i}")} == {0, 110}


def test_lookup_misses_a_row_the_index_forgot() -> None:
    seen = table()
    seen._index = RowIndex(capacity=10)
    seen._add([(f"ien:{i}", Outcome.EVENT) for i in range(12)], at=1000.0)
    assert seen.lookup("ien:0", 1001.0) is None and seen.lookup("ien:11", 1001.0) == (Outcome.EVENT, 1000.0)
