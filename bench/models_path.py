"""The models path alone: the ``entity-changes`` records a live run wrote, read back from Kafka and written by
the models sink (``streams.models_sink.ModelsSink``, as replay writes them) into an empty database, in one
process, as the one worker that owns the topic's single partition would.

``bench.run --models-path`` runs it with the live worker's environment (its topics) after the live run and
compares its rate with the live run's rate of snapshots. Prints one JSON line: ``records``, ``snapshots``,
``seconds`` (wall), ``cpu_s`` (this process), ``snapshots_per_s`` and ``cpu_us_per_snapshot``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence

import orjson

from streams.app import build
from streams.models_sink import ModelsSink
from streams.mongo import ensure_indexes
from streams.outputs import KafkaModelOutputs
from streams.replay import replay_topic
from streams.settings import get_settings
from streams.topic_records import EntityChanges


async def write_all(database: str) -> dict[str, float]:
    """Write every ``entity-changes`` record into ``database`` (an empty one) through the models sink."""
    settings = get_settings().model_copy(update={"mongo_database": database})
    worker = build(settings)
    db = worker.connections.mongo()
    await ensure_indexes(db)
    sink = ModelsSink(db, {}, worker.connections.document_ids(), KafkaModelOutputs(worker.topics))
    snapshots = 0

    async def write(batch: Sequence[EntityChanges]) -> None:
        nonlocal snapshots
        snapshots += sum(len(changes.snapshots) for changes in batch)
        await sink.write(batch)

    cpu, started = time.process_time(), time.perf_counter()
    try:
        records = await replay_topic(settings, worker.topics.entity_changes.get_topic_name(), EntityChanges, write,
                                     since=None, batch=settings.sink_batch, progress=lambda *_: None)
        seconds, cpu_s = time.perf_counter() - started, time.process_time() - cpu
    finally:
        await worker.connections.aclose()
        await worker.app.producer.stop()
    return {"records": records, "snapshots": snapshots, "seconds": seconds, "cpu_s": cpu_s,
            "snapshots_per_s": snapshots / seconds if seconds else 0.0,
            "cpu_us_per_snapshot": cpu_s * 1e6 / snapshots if snapshots else 0.0}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database", required=True, help="an empty database to write the models into")
    args = parser.parse_args(argv)
    print(orjson.dumps(asyncio.run(write_all(args.database))).decode())


if __name__ == "__main__":
    main()
