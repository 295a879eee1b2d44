"""The resolvers in process, built with in-memory stand-ins for their tables, SFMC clients and outputs.

They write their tables only once Kafka has what a fetch produced (snapshots on entity-changes, requests for
what they refer to, dead letters) and the producer has room: a worker that dies in between must leave no table
entry that would stop the request, read again, from producing it again. Ids SFMC does not return are retried
with backoff and requested again when due, on the worker that owns their partition; folders get their full
paths; entries older than the refresh period are fetched again."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest

from streams.entity_ids import EntityType, entity
from streams.marketing_cloud import MarketingCloudError
from streams.marketing_cloud.records import DataFolder, Email, Send, Subscriber
from streams.resolvers import (
    CategoryResolver,
    EmailResolver,
    Resolver,
    ResolverSettings,
    SendResolver,
)
from streams.settings import Settings
from streams.topic_records import EntityRequest, EntitySnapshot
from streams.topics import partition_of
from streams.topology import fetch_window

CREATED = datetime(2020, 9, 7, 13, 31, 4, tzinfo=UTC)
START = 1_600_000_000.0
SETTINGS = ResolverSettings(in_batch_size=500, refresh_seconds=86_400, fetch_attempts=3)
LAST = SETTINGS.fetch_attempts - 1
Record = TypeVar("Record")


class Kafka:
    """``streams.resolvers.Outputs`` in memory. Records what was sent; a send's future stays pending until
    ``release`` (Kafka has it then). ``room`` may be asked only once Kafka has everything sent, and counts until
    the next send."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []
        self.futures: list[asyncio.Future[None]] = []
        self.roomy = False

    def deliver(self, what: str, value: Any) -> list[asyncio.Future[None]]:
        self.sent.append((what, value))
        self.futures.append(asyncio.get_running_loop().create_future())
        self.roomy = False
        return self.futures[-1:]

    def in_flight(self) -> bool:
        return not all(future.done() for future in self.futures)

    def release(self) -> None:
        for future in self.futures:
            if not future.done():
                future.set_result(None)

    def delivered(self, what: str) -> list[Any]:
        return [value for (kind, value), future in zip(self.sent, self.futures, strict=True)
                if kind == what and future.done()]

    def clear(self) -> None:
        self.sent.clear()
        self.futures.clear()

    async def snapshots(self, snapshots: Sequence[EntitySnapshot]) -> list[asyncio.Future[None]]:
        return self.deliver("entity-changes", list(snapshots)) if snapshots else []

    async def entity_requests(self, tenant: str, kind: EntityType, ids: Iterable[int | str],
                              attempt: int = 0) -> list[asyncio.Future[None]]:
        return self.deliver(f"{kind}-requests", (tenant, sorted(map(str, ids)), attempt))

    async def dead_letter(self, tenant: str, kind: EntityType, key: str, reason: str) -> list[asyncio.Future[None]]:
        return self.deliver("dead-letter", key)

    async def room(self) -> None:
        assert not self.in_flight(), "the producer's room asked for before Kafka had what was sent"
        self.roomy = True


class Table(dict[str, Any]):
    """A table that refuses a write while anything sent is not yet in Kafka."""

    def __init__(self, kafka: Kafka) -> None:
        super().__init__()
        self.kafka = kafka

    def __setitem__(self, key: str, value: Any) -> None:
        assert not self.kafka.in_flight(), f"table entry {key!r} written before Kafka had what was sent"
        super().__setitem__(key, value)

    def field(self, key: str, name: str) -> Any:
        """``streams.resolvers.Table.field``."""
        return getattr(self.get(key), name, None)

    async def write(self, entries: Mapping[str, Any]) -> None:
        """``streams.resolvers.Table.write``: each key set (checked as above), or deleted where its value is None."""
        for key, value in entries.items():
            if value is None:
                self.pop(key, None)
            else:
                self[key] = value


class EntityTable(Table):
    """An entity table, which is also written only once the producer has room for more."""

    def __setitem__(self, key: str, value: Any) -> None:
        assert self.kafka.roomy, f"table entry {key!r} written before the producer had room"
        super().__setitem__(key, value)


class SFMC:
    """``streams.resolvers.Client`` in memory: it returns the ``records`` it holds (add some to make them
    known later) and raises ``error`` when set; ``calls`` holds each call's ids."""

    def __init__(self, *records: Any) -> None:
        self.records = list(records)
        self.calls: list[list[str]] = []
        self.error: MarketingCloudError | None = None

    def _found(self, kind: type[Record], ids: Iterable[int | str]) -> list[Record]:
        wanted = sorted(map(str, ids))
        self.calls.append(wanted)
        if self.error is not None:
            raise self.error
        return [record for record in self.records if isinstance(record, kind) and str(record.id) in wanted]

    async def sends(self, ids: Iterable[int | str]) -> list[Send]:
        return self._found(Send, ids)

    async def subscribers(self, ids: Iterable[int | str]) -> list[Subscriber]:
        return self._found(Subscriber, ids)

    async def emails(self, ids: Iterable[int | str]) -> list[Email]:
        return self._found(Email, ids)

    async def folders(self, ids: Iterable[int | str]) -> list[DataFolder]:
        return self._found(DataFolder, ids)


class Clock:
    """The time the resolvers read (epoch seconds), moved on by the test."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def kafka() -> Kafka:
    return Kafka()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def resolver(kind: EntityType, kafka: Kafka, sfmc: SFMC, clock: Clock, partitions: int = 1) -> Any:
    """The kind's resolver on in-memory tables (a send's acks too: ``resolver.acks``), ``sfmc`` every tenant's
    client."""
    args = (kind, EntityTable(kafka), Table(kafka), partitions, lambda tenant: sfmc, kafka, SETTINGS)
    if kind == "send":
        return SendResolver(*args, acks=Table(kafka), clock=clock)
    kinds: dict[str, type[Resolver]] = {"subscriber": Resolver, "email": EmailResolver, "category": CategoryResolver}
    return kinds[kind](*args, clock=clock)


async def run(resolving: Awaitable[None], kafka: Kafka) -> int:
    """Run a resolve until it is done, letting Kafka have the sends each time it waits; returns the waits."""
    task = asyncio.ensure_future(resolving)
    waits = 0
    while True:
        for _ in range(50):  # yield to the loop until the resolver is done or stuck: no condition says it is stuck
            await asyncio.sleep(0)
        if task.done():
            break
        assert kafka.in_flight(), "the resolver waits for something other than Kafka"
        waits += 1
        kafka.release()
    await task
    return waits


def send_record(ident: int, email_id: int) -> Send:
    return Send(id=ident, email_id=email_id, created_date=CREATED, modified_date=CREATED, hard_bounces=0,
                soft_bounces=0, other_bounces=0, email_name="n", from_address="a@b.c", from_name="f", subject="s",
                preview_url="", status="Complete", sent_date=CREATED, number_sent=1, number_delivered=1,
                unique_opens=0, unique_clicks=0, unsubscribes=0, forwarded_emails=0)


def subscriber_record(ident: int) -> Subscriber:
    return Subscriber(id=ident, email_address=f"{ident}@example.com", created_date=CREATED)


def paths(kafka: Kafka) -> dict[str, list[str]]:
    """The folders published on entity-changes so far, with their paths (a later snapshot wins)."""
    return {snapshot.entity: snapshot.data["path"] for batch in kafka.delivered("entity-changes")
            for snapshot in batch}


async def test_sends_are_stored_once_their_snapshots_and_email_requests_are_in_kafka(
        kafka: Kafka, clock: Clock) -> None:
    sends = resolver("send", kafka, SFMC(send_record(607105, 117131)), clock)
    waits = await run(sends.resolve([EntityRequest(tenant="ien", ids=["607105", "607106"],
                                                   acks={"607105": ["k9"]})]), kafka)
    assert waits >= 1 and [what for what, _ in kafka.sent] == ["entity-changes", "email-requests"]
    [[snapshot]] = kafka.delivered("entity-changes")
    assert snapshot.entity == "mc.ien.send*607105" and snapshot.acks == ["k9"]
    assert kafka.delivered("email-requests") == [("ien", ["117131"], 0)]
    assert set(sends.table) == {"mc.ien.send*607105"}
    assert set(sends.retries) == {"mc.ien.send*607106"}  # not returned: asked again later


async def test_new_ack_codes_count_as_known_once_their_republish_is_in_kafka(kafka: Kafka, clock: Clock) -> None:
    sends = resolver("send", kafka, SFMC(send_record(607105, 117131)), clock)
    await run(sends.resolve([EntityRequest(tenant="ien", ids=["607105"], acks={"607105": ["k9"]})]), kafka)
    kafka.clear()
    resolving = asyncio.ensure_future(sends.resolve([EntityRequest(tenant="ien", ids=["607105"],
                                                                   acks={"607105": ["k9", "x1"]})]))
    for _ in range(50):  # yield to the loop until the resolver waits for Kafka (``run`` says why no condition)
        await asyncio.sleep(0)
    [(what, [republished])] = kafka.sent  # the fresh send, with its new code
    assert what == "entity-changes" and republished.acks == ["k9", "x1"]
    assert sends.acks["mc.ien.send*607105"] == ["k9"], "new codes known before Kafka had them"
    assert await run(resolving, kafka) == 1
    assert sends.acks["mc.ien.send*607105"] == ["k9", "x1"]


async def test_an_id_is_marked_dead_lettered_once_kafka_has_its_dead_letter(kafka: Kafka, clock: Clock) -> None:
    subscribers = resolver("subscriber", kafka, SFMC(), clock)
    assert await run(subscribers.resolve([EntityRequest(tenant="ien", ids=["70000001"], attempt=LAST)]), kafka) == 1
    assert kafka.delivered("dead-letter") == ["mc.ien.subscriber*70000001"]
    assert subscribers.retries["mc.ien.subscriber*70000001"]["attempt"] == LAST


@pytest.mark.parametrize(("attempt", "retry", "due_in", "dead_lettered"), [
    (0, 1, 1.0, False), (1, 2, 2.0, False), (LAST, LAST, SETTINGS.refresh_seconds, True)])
async def test_an_id_sfmc_does_not_return_is_retried_with_backoff_then_after_the_refresh_period(
        kafka: Kafka, clock: Clock, attempt: int, retry: int, due_in: float, dead_lettered: bool) -> None:
    subscribers = resolver("subscriber", kafka, SFMC(), clock)
    await run(subscribers.resolve([EntityRequest(tenant="ien", ids=["7"], attempt=attempt)]), kafka)
    assert subscribers.retries["mc.ien.subscriber*7"] == {"tenant": "ien", "id": "7", "attempt": retry,
                                                          "due": START + due_in}
    assert kafka.delivered("dead-letter") == (["mc.ien.subscriber*7"] if dead_lettered else [])


async def test_while_sfmc_fails_ids_are_retried_past_their_attempts_a_minute_apart_at_most(
        kafka: Kafka, clock: Clock) -> None:
    sfmc = SFMC()
    sfmc.error = MarketingCloudError("HTTP 503")
    subscribers = resolver("subscriber", kafka, sfmc, clock)
    await run(subscribers.resolve([EntityRequest(tenant="ien", ids=["7"], attempt=7)]), kafka)
    assert subscribers.retries["mc.ien.subscriber*7"] == {"tenant": "ien", "id": "7", "attempt": 8,
                                                          "due": START + 60.0}
    assert kafka.sent == []  # no verdict on the id: no dead letter


async def test_due_retries_are_requested_again_by_the_owner_of_their_partition_once_per_attempt(
        kafka: Kafka, clock: Clock) -> None:
    sfmc = SFMC()
    subscribers = resolver("subscriber", kafka, sfmc, clock, partitions=4)
    ids = [str(ident) for ident in range(1, 40)]
    mine = [i for i in ids if partition_of(entity("ien", "subscriber", i), 4) == 1]
    other = [i for i in ids if partition_of(entity("ien", "subscriber", i), 4) == 2]
    assert mine and other
    await run(subscribers.resolve([EntityRequest(tenant="ien", ids=[*mine, *other])]), kafka)
    kafka.clear()
    clock.now = START + 0.5
    await subscribers.requeue_due({1})
    assert kafka.sent == []  # not due yet (1 s backoff)
    clock.now = START + 1.0
    await subscribers.requeue_due({1})
    await subscribers.requeue_due({1})  # the same attempt is requested once
    assert kafka.sent == [("subscriber-requests", ("ien", sorted(mine), 1))]
    kafka.clear()
    # the request, read again, is fetched at its attempt; still unknown, it is due again 2 s later
    await run(subscribers.resolve([EntityRequest(tenant="ien", ids=mine, attempt=1)]), kafka)
    assert sfmc.calls[-1] == sorted(mine)
    kafka.clear()
    clock.now = START + 3.0
    await subscribers.requeue_due({1, 2})
    assert sorted(kafka.sent) == sorted([("subscriber-requests", ("ien", sorted(mine), 2)),
                                         ("subscriber-requests", ("ien", sorted(other), 1))])


async def test_folders_are_stored_with_their_paths_once_kafka_has_them(kafka: Kafka, clock: Clock) -> None:
    folders = SFMC(DataFolder(id=4002, parent_id=4001, name="Newsletters"),
                   DataFolder(id=4001, parent_id=0, name="my emails"))
    categories = resolver("category", kafka, folders, clock)
    # the folder, then its parent (the root), which completes both paths
    assert await run(categories.resolve([EntityRequest(tenant="ien", ids=["4002"])]), kafka) == 1
    published = paths(kafka)
    assert published == {"mc.ien.category*4001": ["my emails"],
                         "mc.ien.category*4002": ["my emails", "Newsletters"]}
    assert {key: entry.data.get("path") for key, entry in categories.table.items()} == published


async def test_a_folder_whose_parent_arrives_in_a_later_fetch_gets_its_path_then(kafka: Kafka, clock: Clock) -> None:
    sfmc = SFMC(DataFolder(id=4002, parent_id=4001, name="Newsletters"))
    categories = resolver("category", kafka, sfmc, clock)
    await run(categories.resolve([EntityRequest(tenant="ien", ids=["4002"])]), kafka)
    assert sfmc.calls == [["4002"], ["4001"]]  # the parent is asked for at once, with the last attempt
    assert paths(kafka) == {} and kafka.delivered("dead-letter") == ["mc.ien.category*4001"]
    assert "path" not in categories.table["mc.ien.category*4002"].data  # stored, not published: no path yet
    kafka.clear()
    sfmc.records.append(DataFolder(id=4001, parent_id=0, name="my emails"))
    clock.now = START + SETTINGS.refresh_seconds
    await categories.requeue_due({0})
    [(_, (tenant, ids, attempt))] = kafka.sent
    await run(categories.resolve([EntityRequest(tenant=tenant, ids=ids, attempt=attempt)]), kafka)
    published = {"mc.ien.category*4001": ["my emails"], "mc.ien.category*4002": ["my emails", "Newsletters"]}
    assert paths(kafka) == published
    assert {key: entry.data.get("path") for key, entry in categories.table.items()} == published
    assert dict(categories.retries) == {}


async def test_an_entry_is_fetched_again_once_older_than_the_refresh_period(kafka: Kafka, clock: Clock) -> None:
    sfmc = SFMC(subscriber_record(7))
    subscribers = resolver("subscriber", kafka, sfmc, clock)
    asked = [EntityRequest(tenant="ien", ids=["7"])]
    await run(subscribers.resolve(asked), kafka)
    clock.now = START + SETTINGS.refresh_seconds
    await run(subscribers.resolve(asked), kafka)  # fresh still: not fetched
    assert sfmc.calls == [["7"]]
    clock.now = START + SETTINGS.refresh_seconds + 1
    await run(subscribers.resolve(asked), kafka)
    assert sfmc.calls == [["7"], ["7"]]
    assert [snapshot.retrieved_at for [snapshot] in kafka.delivered("entity-changes")] == [START, clock.now]
    assert subscribers.table["mc.ien.subscriber*7"].retrieved_at == clock.now


async def test_first_asks_and_due_retries_of_a_window_share_one_call(kafka: Kafka, clock: Clock) -> None:
    sfmc = SFMC()
    subscribers = resolver("subscriber", kafka, sfmc, clock)
    await run(subscribers.resolve([EntityRequest(tenant="ien", ids=["1", "2"]),
                                   EntityRequest(tenant="ien", ids=["3"], attempt=1),
                                   EntityRequest(tenant="ien", ids=["2", "4"], attempt=LAST)]), kafka)
    assert sfmc.calls == [["1", "2", "3", "4"]]
    # each id goes on from its own attempt: the one whose attempts are used up is dead-lettered
    assert {key.rpartition("*")[2]: retry["attempt"] for key, retry in subscribers.retries.items()} == {
        "1": 1, "2": LAST, "3": 2, "4": LAST}
    assert sorted(kafka.delivered("dead-letter")) == ["mc.ien.subscriber*2", "mc.ien.subscriber*4"]


def test_the_kinds_clicks_name_gather_for_the_fetch_window_the_chained_kinds_for_theirs() -> None:
    """Sends and subscribers (ingest asks for them) wait ``fetch_window``; emails and categories (a fetched send
    or email asks for them, one step of the chain each) wait ``chained_fetch_window``."""
    settings = Settings(fetch_window=7.0, chained_fetch_window=0.5)
    assert {kind: fetch_window(settings, kind) for kind in ("send", "subscriber", "email", "category")} == {
        "send": 7.0, "subscriber": 7.0, "email": 0.5, "category": 0.5}
