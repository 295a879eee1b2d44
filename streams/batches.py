"""Batches and events for the agents: a batch or event whose handling fails is never committed.

faust acks what a stream handed out in a ``finally`` once the loop body is left, also when it raised:
``Stream.take()`` the events it buffered, a plain ``async for`` over a stream the current event. The worker
then commits their offsets on its way down, and the failed input is never read again. ``each_batch`` and
``each_event`` hand the values to a handler instead, and when the handler raises (or is cancelled) they
withhold its events first: each message is settled for the consumer (so a stopping worker does not wait for
it) without its offset ever becoming committable, so it is read again after the restart. The error is
raised on: ``CrashingSupervisor`` (``streams.app``) stops the worker. From then on the stream withholds every
event it still hands out (``withhold_the_rest``): records fetched behind a failed batch are not handled either.

Both also wait, after each batch or event, until faust's producer buffer is back to its ``max_messages``
(``producer_ebb``): table writes queue their changelog records there without waiting, and faust's own
check before each event (``wait_until_ebb``) waits for at most that many records to leave, so a busy
worker's buffer grew to 12,000 serialized records (issue 11: the largest thing in its peak memory).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from faust.streams import Stream
from faust.types import AppT, EventT

EBB_POLL = 0.005
"""Seconds between ``producer_ebb``'s looks at the producer buffer."""


async def each_batch(stream: Stream[Any], size: int, within: float,
                     handle: Callable[[list[Any]], Awaitable[None]]) -> None:
    """Call ``handle(values)`` with each batch of up to ``size`` values of ``stream``, gathered for at most
    ``within`` seconds; the batch is acked (its offsets committable) only when ``handle`` returns."""
    async for events in stream.take_events(size, within=within):
        with withheld_on_error(stream, events):
            await handle([event.value for event in events])
            await producer_ebb(stream.app)


async def each_event(stream: Stream[Any], handle: Callable[[Any], Awaitable[None]]) -> None:
    """Call ``handle(value)`` with each value of ``stream``, one at a time; its event is acked (its offset
    committable) only when ``handle`` returns."""
    async for event in stream.events():
        with withheld_on_error(stream, [event]):
            await handle(event.value)
            await producer_ebb(stream.app)


async def producer_ebb(app: AppT) -> None:
    """Wait until ``app``'s producer buffer holds at most its ``max_messages`` (100) records, while it runs.
    Raises ``RuntimeError`` when the buffer crashed: its records are lost, so the batch that waits must not be
    acked (``each_batch`` withholds it and the worker stops).

    It looks every ``EBB_POLL`` seconds rather than with the buffer's ``flush_atmost``, which waits for each
    record with a ``wait_for`` of its own and wakes every waiting agent per record: measured at 60k subscribers
    (BENCHMARKS.md), ``flush_atmost`` cost 1,051 µs of worker CPU a row and 741 rows/s, this loop 795 µs and
    937 rows/s (827 µs and 869 rows/s without any wait), the same peak memory."""
    buffer = app.producer.buffer
    while buffer.size > buffer.max_messages and buffer.state == "running":
        await asyncio.sleep(EBB_POLL)
    if buffer.crashed:
        raise RuntimeError("faust's producer buffer crashed with records in it") from buffer.crash_reason


@contextmanager
def withheld_on_error(stream: Stream[Any], events: Sequence[EventT]) -> Iterator[None]:
    """When the block raises, withhold ``events`` (see ``withhold``) and every event ``stream`` hands out after
    them (``withhold_the_rest``), then raise on."""
    try:
        yield
    except BaseException:
        withhold(events)
        withhold_the_rest(stream)
        raise


def withhold_the_rest(stream: Stream[Any]) -> None:
    """Withhold each event ``stream`` hands out from now on, as it hands it out (a processor of the stream).

    Once a handler has failed, nothing handles the records the stream fetched behind its batch, so none may
    become committable. Without this they did: ``take_events`` buffers events in a background drainer, and when
    its generator closes it turns the stream's acks back on, so the drainer acked what it still read. faust
    commits an acked offset past unacked ones below it while the partition has no committed offset yet, so the
    failed batch was committed with them and never read again (how
    ``test_a_sink_that_fails_is_read_again_after_the_restart`` now and then lost a send's clicks). An event
    already inside ``take_events``' buffering processor when the handler fails is not withheld, but it was read
    with the stream's acks off, so it is never acked either.

    The processor stays on the stream: the app's ``CrashingSupervisor`` stops the worker rather than restart the
    agent on the same stream. With a supervisor that restarts agents, the restarted one would handle nothing."""

    def withhold_current(value: Any) -> Any:
        event = stream.current_event
        if event is not None:
            withhold([event])
        return value

    stream.add_processor(withhold_current)


def withhold(events: Sequence[EventT]) -> None:
    """Settle the events' messages without making their offsets committable: ``Message.ack`` does nothing
    for a message already ``acked``, so the stream's ``finally`` no longer reaches ``Consumer.ack`` (which
    records the offset as committable), and the consumer's wait for unacked messages at shutdown skips them."""
    for event in events:
        event.message.acked = True
