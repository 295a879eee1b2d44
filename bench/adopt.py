"""Issue 15: how long ``leads-sync adopt`` takes on a large legacy database, and its resumption.

    .venv/bin/python -m bench.adopt --identities 1000000

Writes ``--identities`` legacy identities (the previous system's shape: generated ``_id``, numeric
``externalSource.identifier``, no ``entity``) into a fresh database on the local stack's MongoDB, with the
sinks' indexes, then adopts them with ``streams.adoption.adopt`` (batches of ``--batch``): stopped after
half the batches (as an interrupted command would be), then run again to the end. Prints documents per
second of each part and of the whole, and writes them to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
import uuid
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient, InsertOne

from streams.adoption import Adopted, adopt
from streams.entity_ids import NAMESPACES
from streams.mongo import INDEXES

from .run import MONGO, RESULTS


class Interrupted(Exception):
    """Raised from the progress callback after half the batches."""


async def _seed(db: Any, count: int, chunk: int = 10_000) -> float:
    for collection, fields, options in INDEXES:
        await db[collection].create_index([(name, ASCENDING) for name in fields], **options)
    started = time.monotonic()
    for first in range(0, count, chunk):
        await db["identities"].bulk_write([InsertOne({
            "externalSource": {"namespace": NAMESPACES["subscriber"], "identifier": 70_000_000 + n},
            "emailAddress": f"person{n}@example.com", "inactive": False})
            for n in range(first, min(count, first + chunk))], ordered=False)
    return time.monotonic() - started


async def measure(identities: int, batch: int) -> dict[str, Any]:
    client: AsyncMongoClient = AsyncMongoClient(MONGO)
    db = client[f"bench_adopt_{uuid.uuid4().hex[:8]}"]
    try:
        seeded = await _seed(db, identities)
        stop_after = identities // 2

        def interrupt(collection: str, count: Adopted, elapsed: float) -> None:
            if collection == "identities" and count.adopted >= stop_after:
                raise Interrupted

        started = time.monotonic()
        with contextlib.suppress(Interrupted):
            await adopt(db, "ien", batch=batch, progress=interrupt)
        first = time.monotonic() - started
        done_first = await db["identities"].count_documents({"entity": {"$exists": True}})
        started = time.monotonic()
        counts = await adopt(db, "ien", batch=batch)
        second = time.monotonic() - started
        return {"identities": identities, "batch": batch, "seed_seconds": round(seeded, 1),
                "first_part": {"adopted": done_first, "seconds": round(first, 1),
                               "per_s": round(done_first / first)},
                "resumed": {"adopted": counts["identities"].adopted, "seconds": round(second, 1),
                            "per_s": round(counts["identities"].adopted / second)},
                "total_per_s": round(identities / (first + second)),
                "all_adopted": await db["identities"].count_documents({"entity": {"$exists": False}}) == 0}
    finally:
        await client.drop_database(db.name)
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--identities", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    result = asyncio.run(measure(args.identities, args.batch))
    print(json.dumps(result, indent=1))
    path = RESULTS / f"{time.strftime('%Y%m%d-%H%M%S')}-adopt-{args.identities}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"results in {path}")


if __name__ == "__main__":
    main()
