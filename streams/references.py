"""The actual ``_id`` of a model document, by entity: what every reference stores (SPEC 4).

A document this system inserts has the ``_id`` derived from its entity (``streams.entity_ids.object_id``).
Only the legacy tenant's entities (``LEADS_LEGACY_TENANT``) may have another one: the previous system's
documents, which ``leads-sync adopt`` gave an ``entity`` before any worker started. So only those entities
are looked up, one ``$in`` query per collection for the entities a batch names that the cache does not hold;
an entity without a document gets its derived ``_id``, the one its insert will give it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from bson import ObjectId
from cachetools import LRUCache
from pymongo.asynchronous.database import AsyncDatabase

from streams.chunking import chunks
from streams.entity_ids import EntityType, References, derived_ids, object_id, parse_entity
from streams.mongo import with_backoff

COLLECTIONS: dict[EntityType, str] = {
    "send": "email-sends",
    "subscriber": "identities",
    "email": "email-deployments",
    "category": "email-categories",
}
"""The collection holding the model documents of each entity type."""
LOOKUP_BATCH = 1000
"""At most this many entities in one ``$in`` query."""


class DocumentIds:
    """Resolves entities to their documents' ``_id``s for one database.

    ``legacy_tenant``: the tenant whose documents may predate this system (None: no lookups at all).
    ``cache_size``: how many looked-up ``_id``s are kept (least recently used go first). A document's ``_id``
    never changes, and after adoption a missing document is inserted with its derived ``_id``, so both
    answers stay true for as long as the process runs.
    """

    def __init__(self, db: AsyncDatabase, legacy_tenant: str | None, cache_size: int) -> None:
        self._db = db
        self._prefix = f"mc.{legacy_tenant}." if legacy_tenant else None
        self._cache: LRUCache[str, ObjectId] = LRUCache(cache_size)

    async def resolve(self, entities: Iterable[str | None]) -> References:
        """``{entity: _id}`` for every entity given (None values are ignored).

        Raises pymongo errors that are not transient (transient ones are retried with backoff)."""
        keys = {key for key in entities if key is not None}
        if self._prefix is None:
            return derived_ids(keys)
        ids: References = {}
        wanted: dict[str, list[str]] = defaultdict(list)
        for key in keys:
            if not key.startswith(self._prefix):
                ids[key] = object_id(key)
            elif (cached := self._cache.get(key)) is not None:
                ids[key] = cached
            else:
                wanted[COLLECTIONS[parse_entity(key)[1]]].append(key)
        for collection, missing in wanted.items():
            found: References = {}
            for chunk in chunks(missing, LOOKUP_BATCH):
                found.update((doc["entity"], doc["_id"]) for doc in await self._find(collection, chunk))
            for key in missing:
                ids[key] = self._cache[key] = found.get(key) or object_id(key)
        return ids

    async def _find(self, collection: str, keys: Sequence[str]) -> list[dict[str, Any]]:
        return await with_backoff(f"read {collection} ids", lambda: self._db[collection].find(
            {"entity": {"$in": keys}}, {"_id": 1, "entity": 1}).to_list())
