"""A worker whose MongoDB writes are counted, not sent: ``python -m bench.dry_worker worker -l info``.

Stand-in for a ``LEADS_MONGO_DRY_RUN`` setting (proposed, not in ``streams`` yet): it replaces
``streams.mongo.bulk_upsert`` before the agents import it. Reads (flags, url-acknowledgments, indexes)
still go to MongoDB; they are few.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

import streams.mongo

WRITES: dict[str, int] = {}


async def counted_upsert(target: AsyncCollection, ops: Sequence[Any]) -> dict[int, str]:
    WRITES[target.name] = WRITES.get(target.name, 0) + len(ops)
    return {}  # nothing refused


streams.mongo.bulk_upsert = counted_upsert

if __name__ == "__main__":
    from streams.app import main

    main()
