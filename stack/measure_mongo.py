"""Bulk-upsert throughput of a MongoDB-protocol server, with event-email-clicks shaped documents.

    python -m stack.measure_mongo [--url URL] [--count 20000] [--batch 1000]

Runs unordered bulks of ``UpdateOne(upsert=True)`` on the click key ``{day, job, url, usr}`` (unique index):
first every key new (inserting upserts), then the same keys again (updating upserts); prints upserts/s.
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
from datetime import UTC, datetime, timedelta

from bson import ObjectId
from pymongo import ASCENDING, MongoClient, UpdateOne

from . import config


def _ops(keys: list[dict], start: datetime) -> list[UpdateOne]:
    ops = []
    for key in keys:
        guid = str(uuid.uuid4())
        bot = random.random() < 0.1
        add, remove = ("bots", "guids") if bot else ("guids", "bots")
        when = start + timedelta(seconds=random.randrange(86_400))
        ops.append(
            UpdateOne(
                key,
                {
                    "$max": {"last": when},
                    "$addToSet": {add: {"$each": [guid]}},
                    "$pull": {remove: guid},
                    "$setOnInsert": {"n": 0},
                },
                upsert=True,
            )
        )
    return ops


def _run(collection, keys: list[dict], batch: int) -> float:
    day = datetime(2020, 9, 7, 5, tzinfo=UTC)
    ops = _ops(keys, day)
    began = time.perf_counter()
    for offset in range(0, len(ops), batch):
        collection.bulk_write(ops[offset : offset + batch], ordered=False)
    return len(ops) / (time.perf_counter() - began)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=config.load().mongo_url)
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1_000)
    args = parser.parse_args(argv)
    random.seed(7)
    client: MongoClient = MongoClient(args.url)
    name = f"measure_{uuid.uuid4().hex[:12]}"
    collection = client[name]["event-email-clicks"]
    try:
        collection.create_index(
            [("day", ASCENDING), ("job", ASCENDING), ("url", ASCENDING), ("usr", ASCENDING)], unique=True
        )
        day = datetime(2020, 9, 7, 5, tzinfo=UTC)
        jobs = [ObjectId() for _ in range(20)]
        keys = [
            {"day": day, "job": random.choice(jobs), "url": ObjectId(), "usr": ObjectId()} for _ in range(args.count)
        ]
        inserting = _run(collection, keys, args.batch)
        updating = _run(collection, keys, args.batch)
        assert collection.count_documents({}) == args.count
        print(f"server: {args.url}")
        print(f"inserting upserts: {inserting:,.0f}/s ({args.count} in bulks of {args.batch})")
        print(f"updating upserts:  {updating:,.0f}/s ({args.count} in bulks of {args.batch})")
    finally:
        client.drop_database(name)
        client.close()


if __name__ == "__main__":
    main()
