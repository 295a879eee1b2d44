"""The resolvers write their tables only once Kafka has what a fetch produced (snapshots on entity-changes,
requests for what they refer to, dead letters): a worker that dies in between must leave no table entry that
would stop the request, read again, from producing it again. In process, with the resolvers' tables,
topics and SFMC calls replaced by in-memory stand-ins."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from streams.marketing_cloud.records import DataFolder, Send
from streams.models import EntityRequest
from streams.tables import entities

CREATED = datetime(2020, 9, 7, 13, 31, 4, tzinfo=UTC)


class Kafka:
    """Records what was sent; a send's future stays pending until ``release`` (Kafka has it then)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []
        self.futures: list[asyncio.Future[None]] = []

    def deliver(self, what: str, value: Any) -> list[asyncio.Future[None]]:
        self.sent.append((what, value))
        self.futures.append(asyncio.get_running_loop().create_future())
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


class Table(dict[str, Any]):
    """A table that refuses a write while anything sent is not yet in Kafka."""

    def __init__(self, kafka: Kafka) -> None:
        super().__init__()
        self.kafka = kafka

    def __setitem__(self, key: str, value: Any) -> None:
        assert not self.kafka.in_flight(), f"table entry {key!r} written before Kafka had what was sent"
        super().__setitem__(key, value)


async def run(resolving: Any, kafka: Kafka) -> int:
    """Run a resolve until it is done, letting Kafka have the sends each time it waits; returns the waits."""
    task = asyncio.ensure_future(resolving)
    waits = 0
    while True:
        for _ in range(50):
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


@pytest.fixture
def kafka(monkeypatch: pytest.MonkeyPatch) -> Kafka:
    kafka = Kafka()

    async def publish_snapshots(snapshots: list[Any]) -> list[asyncio.Future[None]]:
        return kafka.deliver("entity-changes", list(snapshots)) if snapshots else []

    async def request(topic: Any, tenant: str, kind: str, ids: Any, **_: Any) -> list[asyncio.Future[None]]:
        return kafka.deliver(f"{kind}-requests", sorted(map(str, ids)))

    async def send_dead_letter(key: str, *_: Any) -> asyncio.Future[None]:
        return kafka.deliver("dead-letter", key)[0]

    monkeypatch.setattr(entities, "publish_snapshots", publish_snapshots)
    monkeypatch.setattr(entities, "request", request)
    monkeypatch.setattr(entities, "send_dead_letter", send_dead_letter)
    monkeypatch.setattr(entities, "marketing_cloud", lambda tenant: None)
    monkeypatch.setattr(entities, "send_acks_table", Table(kafka))
    return kafka


def stand_in(monkeypatch: pytest.MonkeyPatch, resolver: entities.Resolver, kafka: Kafka,
             records: list[Any]) -> entities.Resolver:
    async def fetch(client: Any, ids: list[str]) -> list[Any]:
        return [record for record in records if str(record.id) in ids]

    monkeypatch.setattr(resolver, "table", Table(kafka))
    monkeypatch.setattr(resolver, "retries", Table(kafka))
    monkeypatch.setattr(resolver, "fetch", fetch)
    return resolver


async def test_sends_are_stored_once_their_snapshots_and_email_requests_are_in_kafka(
        monkeypatch: pytest.MonkeyPatch, kafka: Kafka) -> None:
    sends = stand_in(monkeypatch, entities.sends, kafka, [send_record(607105, 117131)])
    waits = await run(sends.resolve([EntityRequest(tenant="ien", ids=["607105", "607106"],
                                                   acks={"607105": ["k9"]})]), kafka)
    assert waits >= 1 and [what for what, _ in kafka.sent] == ["entity-changes", "email-requests"]
    [[snapshot]] = kafka.delivered("entity-changes")
    assert snapshot.entity == "mc.ien.send*607105" and snapshot.acks == ["k9"]
    assert set(sends.table) == {"mc.ien.send*607105"}
    assert set(sends.retries) == {"mc.ien.send*607106"}  # not returned: asked again later


async def test_new_ack_codes_count_as_known_once_their_republish_is_in_kafka(
        monkeypatch: pytest.MonkeyPatch, kafka: Kafka) -> None:
    sends = stand_in(monkeypatch, entities.sends, kafka, [send_record(607105, 117131)])
    await run(sends.resolve([EntityRequest(tenant="ien", ids=["607105"], acks={"607105": ["k9"]})]), kafka)
    kafka.sent.clear()
    kafka.futures.clear()
    resolving = asyncio.ensure_future(sends.resolve([EntityRequest(tenant="ien", ids=["607105"],
                                                                   acks={"607105": ["k9", "x1"]})]))
    for _ in range(50):
        await asyncio.sleep(0)
    [(what, [republished])] = kafka.sent  # the fresh send, with its new code
    assert what == "entity-changes" and republished.acks == ["k9", "x1"]
    assert entities.send_acks_table["mc.ien.send*607105"] == ["k9"], "new codes known before Kafka had them"
    assert await run(resolving, kafka) == 1
    assert entities.send_acks_table["mc.ien.send*607105"] == ["k9", "x1"]


async def test_an_id_is_marked_dead_lettered_once_kafka_has_its_dead_letter(
        monkeypatch: pytest.MonkeyPatch, kafka: Kafka) -> None:
    subscribers = stand_in(monkeypatch, entities.subscribers, kafka, [])
    last = entities.settings.entity_fetch_attempts - 1
    assert await run(subscribers.resolve([EntityRequest(tenant="ien", ids=["70000001"], attempt=last)]), kafka) == 1
    assert kafka.delivered("dead-letter") == ["mc.ien.subscriber*70000001"]
    assert subscribers.retries["mc.ien.subscriber*70000001"]["attempt"] == last


async def test_folders_are_stored_with_their_paths_once_kafka_has_them(
        monkeypatch: pytest.MonkeyPatch, kafka: Kafka) -> None:
    folders = [DataFolder(id=4002, parent_id=4001, name="Newsletters"),
               DataFolder(id=4001, parent_id=0, name="my emails")]
    categories = stand_in(monkeypatch, entities.categories, kafka, folders)
    # the folder, then its parent (the root), which completes both paths
    assert await run(categories.resolve([EntityRequest(tenant="ien", ids=["4002"])]), kafka) == 1
    published = {snapshot.entity: snapshot.data["path"] for batch in kafka.delivered("entity-changes")
                 for snapshot in batch}
    assert published == {"mc.ien.category*4001": ["my emails"],
                         "mc.ien.category*4002": ["my emails", "Newsletters"]}
    assert {key: entry.data.get("path") for key, entry in categories.table.items()} == published


async def test_first_asks_and_due_retries_of_a_window_share_one_call(
        monkeypatch: pytest.MonkeyPatch, kafka: Kafka) -> None:
    calls: list[list[str]] = []
    subscribers = stand_in(monkeypatch, entities.subscribers, kafka, [])

    async def fetch(client: Any, ids: list[str]) -> list[Any]:
        calls.append(sorted(ids))
        return []

    monkeypatch.setattr(subscribers, "fetch", fetch)
    last = entities.settings.entity_fetch_attempts - 1
    await run(subscribers.resolve([EntityRequest(tenant="ien", ids=["1", "2"]),
                                   EntityRequest(tenant="ien", ids=["3"], attempt=1),
                                   EntityRequest(tenant="ien", ids=["2", "4"], attempt=last)]), kafka)
    assert calls == [["1", "2", "3", "4"]]
    # each id goes on from its own attempt: the one whose attempts are used up is dead-lettered
    assert {key.rpartition("*")[2]: retry["attempt"] for key, retry in subscribers.retries.items()} == {
        "1": 1, "2": last, "3": 2, "4": last}
    assert sorted(kafka.delivered("dead-letter")) == ["mc.ien.subscriber*2", "mc.ien.subscriber*4"]
