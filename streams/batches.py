"""Batches for the agents: a batch whose handling fails is never committed.

faust's ``Stream.take()`` acks the events it buffered in a ``finally`` once its generator is closed, also
when the loop body raised; the worker then commits their offsets on its way down, and the failed batch is
never read again. ``each_batch`` hands the batch's values to a handler instead, and when the handler raises
(or is cancelled) it withholds the batch's events first: each message is settled for the consumer (so a
stopping worker does not wait for it) without its offset ever becoming committable, so the batch is read
again after the restart. The error is raised on: ``CrashingSupervisor`` (``streams.app``) stops the worker.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from faust.streams import Stream
from faust.types import EventT


async def each_batch(stream: Stream[Any], size: int, within: float,
                     handle: Callable[[list[Any]], Awaitable[None]]) -> None:
    """Call ``handle(values)`` with each batch of up to ``size`` values of ``stream``, gathered for at most
    ``within`` seconds; the batch is acked (its offsets committable) only when ``handle`` returns."""
    async for events in stream.take_events(size, within=within):
        try:
            await handle([event.value for event in events])
        except BaseException:
            withhold(events)
            raise


def withhold(events: Sequence[EventT]) -> None:
    """Settle the events' messages without making their offsets committable: ``Message.ack`` does nothing
    for a message already ``acked``, so take's ``finally`` no longer reaches ``Consumer.ack`` (which records
    the offset as committable), and the consumer's wait for unacked messages at shutdown skips them."""
    for event in events:
        event.message.acked = True
