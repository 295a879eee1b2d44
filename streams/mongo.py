"""MongoDB writes that wait out an outage: transient errors back off and retry, never spin or crash."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, TypeVar

from pymongo import ASCENDING, UpdateMany, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, ConnectionFailure, OperationFailure, PyMongoError

from streams import metrics
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
    """Run ``attempt_fn()`` until MongoDB answers and return its result: 0.5 s doubling to 30 s on transient
    errors; any other error is raised."""
    return await until_done(f"MongoDB {what}", attempt_fn, first=0.5, cap=30.0,
                            transient=lambda exc: isinstance(exc, PyMongoError) and _transient(exc),
                            on_retry=lambda: metrics.mongo_retries.labels(what=what).inc())


async def bulk_upsert(target: AsyncCollection, ops: Sequence[UpdateOne | UpdateMany]) -> dict[int, str]:
    """Unordered bulk writes of ``ops`` to ``target``, retried until MongoDB acknowledges them (upserts are
    idempotent).

    Returns the operations MongoDB refused for good, ``{index in ops: reason}``: a write error that is not
    transient (say, ``$addToSet`` on a field that is not an array) is the document's, not the batch's. The
    others are written: after a refusal they are written once more, which also retries the duplicate-key
    losers of concurrent upserts. Raises pymongo errors that are neither transient nor a document's."""
    collection = target.name
    refused: dict[int, str] = {}
    pending = list(range(len(ops)))
    while pending:
        write = with_backoff(f"write to {collection}", partial(_write, target, [ops[i] for i in pending]))
        metrics.mongo_write_ops.labels(collection=collection).inc(len(pending))
        errors = await metrics.timed(metrics.mongo_writes, write, collection=collection)
        if not errors:
            break
        refused.update({pending[index]: reason for index, reason in errors.items()})
        pending = [i for i in pending if i not in refused]
    return refused


async def _write(target: AsyncCollection, ops: list[UpdateOne | UpdateMany]) -> dict[int, str]:
    """One unordered bulk write; its write errors that are not transient, ``{index in ops: reason}``."""
    try:
        await target.bulk_write(ops, ordered=False)
    except BulkWriteError as exc:
        refused = {error["index"]: f"{error.get('errmsg', 'write error')} (code {error.get('code')})"
                   for error in exc.details.get("writeErrors", []) if error.get("code") != DUPLICATE_KEY}
        if not refused or exc.details.get("writeConcernErrors"):
            raise  # duplicate-key losers alone are transient (``with_backoff`` retries); the rest is not
        return refused
    return {}


async def ensure_indexes(db: AsyncDatabase) -> None:
    """Create the ``INDEXES`` in ``db`` (those that exist are left as they are); waits out an outage like a
    write. Raises pymongo errors that are not transient (an index of the same name and other options)."""
    for collection, fields, options in INDEXES:
        keys = [(name, ASCENDING) for name in fields]
        target = db[collection]
        await with_backoff(f"index on {collection}", partial(target.create_index, keys, **options))
