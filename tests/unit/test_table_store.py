"""The tables' RocksDB store (``streams.tables.store``): each key in its changelog partition's database, written
without a current event, and found again by a new process on the same data directory."""

from __future__ import annotations

import gc
from pathlib import Path

import faust
import pytest
from faust.types import TP

from streams.tables.keyed import KeyedTable
from streams.tables.store import Store
from streams.topic_records import EntitySnapshot
from streams.topics import partition_of

KEY = "mc.ien.send*1"


def new_app(data_dir: Path) -> faust.App:
    return faust.App("store-unit", datadir=str(data_dir), store="leads-rocksdb://", topic_partitions=4)


def keyed(app: faust.App) -> KeyedTable:
    return KeyedTable(app, name="things", key_type=str, partitions=4)


def close(table: faust.Table) -> None:
    table.data._dbs.clear()  # what faust's Store.stop does: the databases close when collected
    gc.collect()


def test_a_keyed_key_lives_in_its_partition_and_survives_a_restart(tmp_path: Path) -> None:
    table = keyed(new_app(tmp_path))
    store = table.data
    assert isinstance(store, Store)
    partition = partition_of(KEY, 4)
    store[KEY] = {"n": 1}  # no current event: an entity table is written from a batch
    assert set(store._dbs) == {partition}
    assert store[KEY] == {"n": 1} and KEY in store
    changelog = TP(table.changelog_topic_name, partition)
    store.set_persisted_offset(changelog, 41)
    close(table)

    again = keyed(new_app(tmp_path)).data
    assert again.persisted_offset(changelog) == 41  # recovery reads the changelog after this offset only
    assert again[KEY] == {"n": 1}
    del again[KEY]
    assert KEY not in again


def test_other_tables_need_an_event_unless_they_have_one_partition(tmp_path: Path) -> None:
    app = new_app(tmp_path)
    single = faust.Table(app, name="single", key_type=str, partitions=1)
    single.data["shard-1"] = "42"
    assert set(single.data._dbs) == {0} and single.data["shard-1"] == "42"
    spread = faust.Table(app, name="spread", key_type=str, partitions=4)
    with pytest.raises(RuntimeError, match="outside an event"):
        spread.data["k"] = "v"


@pytest.mark.parametrize("store", ["leads-rocksdb://", "memory://"])
def test_a_field_of_a_value_is_what_the_value_holds(tmp_path: Path, store: str) -> None:
    app = faust.App("store-unit", datadir=str(tmp_path), store=store, topic_partitions=4)
    table = KeyedTable(app, name="snapshots", key_type=str, value_type=EntitySnapshot, partitions=4)
    snapshot = EntitySnapshot(entity=KEY, tenant="ien", kind="send", data={"id": 1}, retrieved_at=1_790_000_000.25)
    table.data[KEY] = snapshot
    assert table.field(KEY, "retrieved_at") == 1_790_000_000.25 and table.field(KEY, "data") == {"id": 1}
    assert table.field(KEY, "no such field") is None and table.field("mc.ien.send*2", "retrieved_at") is None
    if store != "memory://":
        close(table)
