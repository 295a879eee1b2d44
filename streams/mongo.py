"""MongoDB writes that wait out an outage: transient errors back off and retry, never spin or crash."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, TypeVar

from pymongo import ASCENDING, UpdateMany, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, ConnectionFailure, OperationFailure, PyMongoError

from streams import metrics
from streams.resources import mongo
from streams.retry import until_done

T = TypeVar("T")

DUPLICATE_KEY = 11000
UNIQUE = {"unique": True}
ENTITY = {"unique": True, "sparse": True}
"""Sparse: the previous system's documents have no entity until ``leads-sync adopt`` gives them one."""
INDEXES: tuple[tuple[str, tuple[str, ...], dict[str, Any]], ...] = (
    ("event-email-clicks", ("day", "job", "url", "usr"), UNIQUE),
    ("identities", ("entity",), ENTITY),
    ("email-categories", ("entity",), ENTITY),
    ("email-deployments", ("entity",), ENTITY),
    ("email-sends", ("entity",), ENTITY),
    ("email-sends", ("deploymentId",), {}),  # a deployment's flags are copied to its sends
    ("email-send-urls", ("sendId", "urlId"), UNIQUE),
    ("processed-events", ("guid",), UNIQUE),
    ("url-acknowledgments", ("shortId",), {}),
)
"""``(collection, fields, create_index options)`` of every index the sinks rely on."""


def _transient(exc: PyMongoError) -> bool:
    if isinstance(exc, ConnectionFailure):
        return True
    if isinstance(exc, BulkWriteError):
        # concurrent upserts of one new document: the loser's duplicate-key error is safe to retry
        errors = exc.details.get("writeErrors", [])
        return bool(errors) and all(error.get("code") == DUPLICATE_KEY for error in errors)
    return isinstance(exc, OperationFailure) and exc.has_error_label("RetryableWriteError")


async def with_backoff(what: str, attempt_fn: Callable[[], Awaitable[T]]) -> T:
    """Run ``attempt_fn()`` until MongoDB answers: 0.5 s doubling to 30 s on transient errors."""
    return await until_done(f"MongoDB {what}", attempt_fn, first=0.5, cap=30.0,
                            transient=lambda exc: isinstance(exc, PyMongoError) and _transient(exc),
                            on_retry=lambda: metrics.mongo_retries.inc(what=what))


async def bulk_upsert(collection: str, ops: Sequence[UpdateOne | UpdateMany]) -> None:
    """One unordered bulk write, retried until MongoDB acknowledges it (upserts are idempotent)."""
    if ops:
        target: AsyncCollection = mongo()[collection]
        write = with_backoff(f"write to {collection}", lambda: target.bulk_write(list(ops), ordered=False))
        metrics.mongo_write_ops.inc(len(ops), collection=collection)
        await metrics.mongo_writes.time(write, collection=collection)


async def ensure_indexes() -> None:
    for collection, fields, options in INDEXES:
        keys = [(name, ASCENDING) for name in fields]
        target: AsyncCollection = mongo()[collection]
        await with_backoff(f"index on {collection}", partial(target.create_index, keys, **options))
