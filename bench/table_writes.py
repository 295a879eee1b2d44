"""CPU per entry of a table write, faust's per-key path against ``KeyedTable.write``, in one worker process:
``python -m bench.table_writes [--entries 10000] [--rounds 3]`` (the stack's Kafka up).

Each round writes ``--entries`` subscriber snapshots (keys new to the table) to an entity table on the RocksDB
store (``streams.tables.store``) both ways, alternating which goes first, and prints µs of process CPU per entry
(``time.process_time``, from the first write until Kafka has every changelog record) and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from statistics import median

import faust
from faust.worker import Worker

from streams.tables.keyed import KeyedTable, keyed_table
from streams.tables.store import STORE_URL, set_memory_budgets
from streams.topic_records import EntitySnapshot

from .run import KAFKA, delete_topics


def snapshots(prefix: str, count: int) -> dict[str, EntitySnapshot]:
    """``count`` subscriber snapshots shaped as the resolver stores them, by entity key."""
    keys = [f"mc.ien.subscriber*{prefix}{n}" for n in range(count)]
    return {key: EntitySnapshot(entity=key, tenant="ien", kind="subscriber", retrieved_at=time.time(),
                                data={"id": key, "key": f"{key}@x.test", "email": f"{key}@x.test", "status": "Active",
                                      "created": 1_790_000_000.0, "attributes": {"First Name": "A", "Last Name": "B"}})
            for key in keys}


async def per_key(table: KeyedTable, entries: dict[str, EntitySnapshot]) -> None:
    for key, value in entries.items():
        table[key] = value
    await table.app.producer.flush()


async def measure(table: KeyedTable, entries: int, rounds: int) -> None:
    ways = {"faust per key": per_key, "KeyedTable.write": lambda t, e: t.write(e)}
    spent: dict[str, list[float]] = {name: [] for name in ways}
    for round_ in range(rounds):
        for name in (list(ways) if round_ % 2 == 0 else list(reversed(ways))):
            batch = snapshots(f"{round_}{name[0]}-", entries)
            started = time.process_time()
            await ways[name](table, batch)
            spent[name].append((time.process_time() - started) * 1e6 / entries)
    for name, values in spent.items():
        shown = ", ".join(f"{value:.0f}" for value in values)
        print(f"{name:18s} µs CPU per entry: {shown} (median {median(values):.0f})")
    print(f"per key ÷ write: {median(spent['faust per key']) / median(spent['KeyedTable.write']):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    set_memory_budgets(16, 16)
    app = faust.App(f"bench-table-writes-{uuid.uuid4().hex[:8]}", broker=f"kafka://{KAFKA}", store=STORE_URL,
                    datadir=tempfile.mkdtemp(prefix="table-writes-"), web_enabled=False, producer_linger_ms=5,
                    topic_replication_factor=1, topic_partitions=4, autodiscover=False)
    table = keyed_table(app, "subscribers", partitions=4, value_type=EntitySnapshot)

    @app.task
    async def run() -> None:
        await asyncio.sleep(2)  # the worker's start-up settles
        await measure(table, args.entries, args.rounds)
        await delete_topics(app.conf.id)
        os._exit(0)  # the worker's shutdown has nothing to keep

    Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
