"""Retry until done: the backoff every sink, the acker and the acks publisher use when a dependency is down."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


async def until_done(what: str, attempt: Callable[[], Awaitable[T]], *,
                     transient: Callable[[Exception], bool], first: float = 1.0, cap: float = 60.0,
                     on_retry: Callable[[], None] | None = None) -> T:
    """Run ``attempt()`` until it succeeds, sleeping ``first`` seconds doubling to ``cap`` after each error
    ``transient`` accepts; any other error is raised. Holding on is the point: nothing is dropped."""
    delay = first
    while True:
        try:
            return await attempt()
        except Exception as exc:
            if not transient(exc):
                raise
            log.warning("%s failed (%s); retrying in %.1fs", what, type(exc).__name__, delay)
            if on_retry is not None:
                on_retry()
            await asyncio.sleep(delay)
            delay = min(delay * 2, cap)
