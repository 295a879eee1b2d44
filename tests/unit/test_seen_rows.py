"""The seen-rows table's index: lookups within the TTL, the latest handling wins after recovery, expiry."""

from streams.app import app
from streams.tables.seen_rows import TTL, Outcome, SeenRows


def table() -> SeenRows:
    # in memory: the index logic is under test (a bare "memory://" is falsy to faust, which then takes the app's store)
    return SeenRows(app, name="seen-rows-unit", beacon=app.tables.beacon, key_type=str, store="memory://unit")


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
