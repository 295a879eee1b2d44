"""Entity tables (sends, subscribers, emails, categories) and the resolver that fills them from SFMC.

A resolver takes the requests gathered over a short window, keeps the ids whose table entry is missing
or older than the refresh period, fetches them with ``IN`` requests of up to ``in_batch_size`` ids per
business unit (concurrently; the client limits calls per BU), publishes the fetched snapshots on
``entity-changes`` (one record per fetch), requests what they refer to and, once Kafka has both, stores each
snapshot in its table: a worker that dies before then leaves no entry that would stop the request, read again,
from producing them again.
Ids SFMC does not return are retried with backoff, then dead-lettered and asked again only after the refresh
period (not with every click on them); while SFMC itself fails they are retried until it answers. Pending
retries live in a table, so restarts keep them; they never hold up other keys.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import faust
from faust.types import TP, TableT

from streams import metrics
from streams.app import app, settings
from streams.batches import producer_ebb
from streams.entities import EntityType, entity, snapshot_data
from streams.marketing_cloud import MarketingCloudClient, MarketingCloudError
from streams.models import DeadLetterStage, EntityRequest, EntitySnapshot
from streams.resources import marketing_cloud
from streams.tables.keyed import keyed_table
from streams.topics import (
    Pending,
    category_requests,
    email_requests,
    partition_of,
    publish_snapshots,
    send_dead_letter,
    send_requests,
    subscriber_requests,
)

log = logging.getLogger(__name__)

Fetch = Callable[[MarketingCloudClient, list[str]], Awaitable[Sequence[Any]]]


def _table(name: str, partitions: int | None = None) -> TableT:
    return keyed_table(name, partitions=partitions, value_type=EntitySnapshot, help=f"{name} snapshots by entity")


sends_table = _table("sends")
subscribers_table = _table("subscribers")
emails_table = _table("emails")
categories_table = _table("categories", partitions=1)
send_acks_table = keyed_table("send-acks", default=list, help="acknowledgement codes seen with each send")


async def request(topic: faust.TopicT, tenant: str, kind: EntityType, ids: Iterable[int | str],
                  acks: dict[str, list[str]] | None = None, attempt: int = 0,
                  refetch: bool = False) -> Pending:
    """Send one request per partition for ``ids``, routed where their entity keys live; await the returned
    futures to know Kafka has them."""
    by_partition: dict[int, list[str]] = defaultdict(list)
    partitions = topic.partitions or settings.topic_partitions
    for ident in {str(i) for i in ids}:
        by_partition[partition_of(entity(tenant, kind, ident), partitions)].append(ident)
    return [await topic.send(key=f"{tenant}:{kind}:{partition}", partition=partition,
                             value=EntityRequest(tenant=tenant, ids=sorted(chunk), acks=acks, attempt=attempt,
                                                 refetch=refetch))
            for partition, chunk in by_partition.items()]


class Resolver:
    """Fetch-on-miss for one entity kind; subclasses add what a kind refers to."""

    def __init__(self, kind: EntityType, table: TableT, topic: faust.TopicT, fetch: Fetch) -> None:
        self.kind = kind
        self.table = table
        self.topic = topic
        self.fetch = fetch
        # pending retries live in a table (changelog-backed), so a restart neither loses nor repeats them
        self.retries = keyed_table(f"{kind}-retries", partitions=table.partitions,
                                   help=f"{kind} ids to fetch again: attempt, due time")
        self._requeued: dict[str, int] = {}
        app.timer(1.0, name=f"requeue-{kind}")(self.requeue_due)

    def stale(self, key: str, now: float) -> bool:
        snapshot = self.table.get(key)
        return snapshot is None or now - snapshot.retrieved_at > settings.refresh_seconds

    async def resolve(self, requests: Sequence[EntityRequest]) -> None:
        """Fetch the window's wanted ids: one ``IN`` call per BU and ``in_batch_size`` ids, whatever attempt
        each id is at (first asks and due retries share the calls)."""
        now = time.time()
        await self.on_requests(requests)
        wanted: dict[str, dict[str, int]] = defaultdict(dict)  # tenant → id → attempt
        for req in requests:
            for ident in req.ids:
                key = entity(req.tenant, self.kind, ident)
                if (req.attempt or req.refetch or key not in self.retries) and (req.refetch or self.stale(key, now)):
                    attempts = wanted[req.tenant]
                    attempts[ident] = max(req.attempt, attempts.get(ident, 0))
        batch = settings.in_batch_size
        await asyncio.gather(*(
            self.fetch_and_store(tenant, {ident: attempts[ident] for ident in chunk})
            for tenant, attempts in wanted.items()
            for chunk in (sorted(attempts)[i : i + batch] for i in range(0, len(attempts), batch))
        ))  # the client limits concurrent calls per BU

    async def on_requests(self, requests: Sequence[EntityRequest]) -> None:
        """Hook for data that rides on the requests of a window (a send's acks)."""

    async def fetch_and_store(self, tenant: str, attempts: Mapping[str, int]) -> None:
        """Fetch the ids (``attempts``: id → how many times it was asked before) in one call and store what
        SFMC returns; retry the rest."""
        ids = list(attempts)
        try:
            fetching = self.fetch(marketing_cloud(tenant), ids)
            records = await metrics.sfmc_calls.time(fetching, call=self.kind, tenant=tenant)
        except MarketingCloudError as exc:
            log.warning("fetching %d %s(s) of %s failed: %s", len(ids), self.kind, tenant, exc)
            # SFMC being unwell is no verdict on the ids: they are tried again until it answers
            await self.retry(tenant, attempts, f"SFMC error: {exc}", verdict=False)
            return
        retrieved_at = time.time()
        found = {str(record.id): record for record in records}
        metrics.entities_fetched.inc(len(found), kind=self.kind)
        snapshots = [EntitySnapshot(entity=entity(tenant, self.kind, record.id), tenant=tenant, kind=self.kind,
                                    data=snapshot_data(record), retrieved_at=retrieved_at)
                     for record in found.values()]
        entries, pending = await self.publish(snapshots)
        pending += await self.after_fetch(tenant, list(found.values()))
        # the table learns of the snapshots only once Kafka has what they produce: a worker that dies before
        # then leaves them missing from the table, so the request, read again, fetches them again
        await asyncio.gather(*pending)
        await producer_ebb(app)  # room in the producer buffer first: the window's fetches store one after another
        for key, entry in entries.items():
            self.table[key] = entry
        for snapshot in snapshots:
            self._forget_retry(snapshot.entity)
        if missing := {ident: attempt for ident, attempt in attempts.items() if ident not in found}:
            await self.retry(tenant, missing, f"SFMC returned no {self.kind} with this ID", verdict=True)

    async def publish(self, snapshots: list[EntitySnapshot]) -> tuple[dict[str, EntitySnapshot], Pending]:
        """Put fetched snapshots on ``entity-changes``; return the table entries to store once Kafka has them
        (by entity), and the futures that say so."""
        return {snapshot.entity: snapshot for snapshot in snapshots}, await publish_snapshots(snapshots)

    async def after_fetch(self, tenant: str, records: list[Any]) -> Pending:
        """Hook: request the entities these records refer to; returns the requests' futures."""
        return []

    async def retry(self, tenant: str, attempts: Mapping[str, int], reason: str, *, verdict: bool) -> None:
        """Ask again later with backoff (doubling, at most a minute); ``attempts``: id → attempts before this
        one. When ``verdict`` (SFMC answered without the id), an id whose attempts are used up is dead-lettered
        and asked once more only after the refresh period, with its last attempt: until then, requests for it
        (every new click on an unknown send) are not fetched again (SPEC 6.3)."""
        now = time.time()
        last = settings.entity_fetch_attempts - 1
        keys = {ident: entity(tenant, self.kind, ident) for ident in attempts}
        final = {ident for ident, attempt in attempts.items() if verdict and attempt >= last}
        # the dead letters are in Kafka before the table says they were written
        await asyncio.gather(*[await send_dead_letter(keys[ident], DeadLetterStage(f"resolve-{self.kind}"),
                                                      f"{reason} (after {attempts[ident] + 1} attempts)", tenant,
                                                      {"entity": keys[ident]}) for ident in final])
        for ident, attempt in attempts.items():
            key = keys[ident]
            if ident in final:
                self._requeued.pop(key, None)
                self.retries[key] = {"tenant": tenant, "id": ident, "attempt": last,
                                     "due": now + settings.refresh_seconds}
            else:
                self.retries[key] = {"tenant": tenant, "id": ident, "attempt": attempt + 1,
                                     "due": now + min(2.0**attempt, 60.0)}

    def _forget_retry(self, key: str) -> None:
        if key in self.retries:  # a table's pop of a missing key goes through faust's __missing__: look first
            del self.retries[key]
        self._requeued.pop(key, None)

    async def requeue_due(self) -> None:
        """Every second: request again the due retries of the partitions this worker owns."""
        now = time.time()
        # the worker that consumes a key's request partition owns the key (standbys hold copies too)
        owned = app.assignor.assigned_actives()
        topic = self.topic.get_topic_name()
        partitions = self.topic.partitions or settings.topic_partitions
        due: dict[tuple[str, int], list[str]] = defaultdict(list)
        for key, retry in list(self.retries.items()):
            if (retry["due"] <= now and self._requeued.get(key) != retry["attempt"]
                    and TP(topic, partition_of(key, partitions)) in owned):
                self._requeued[key] = retry["attempt"]
                due[retry["tenant"], retry["attempt"]].append(retry["id"])
        for (tenant, attempt), ids in due.items():
            await request(self.topic, tenant, self.kind, ids, attempt=attempt)


class SendResolver(Resolver):
    """Sends also carry the acknowledgement codes seen with them; new codes republish the snapshot."""

    async def on_requests(self, requests: Sequence[EntityRequest]) -> None:
        """Note the window's new ack codes (one ``send-acks`` write per send) and republish each fresh send that
        gained some, once, on ``entity-changes`` only: its table entry is unchanged (acks are read from
        ``send-acks`` whenever it is published)."""
        codes: dict[str, set[str]] = defaultdict(set)
        for req in requests:
            for ident, ack_codes in (req.acks or {}).items():
                codes[entity(req.tenant, "send", ident)].update(ack_codes)
        now, republish, learned = time.time(), [], {}
        for key, seen in codes.items():
            known = self.ack_codes(key)
            if new := seen - set(known):
                learned[key] = acks = sorted(set(known) | new)
                snapshot = self.table.get(key)
                if snapshot is not None and not self.stale(key, now):
                    republish.append(snapshot.derive(acks=acks))
        await asyncio.gather(*await publish_snapshots(republish))  # in Kafka before the codes count as known
        for key, acks in learned.items():
            send_acks_table[key] = acks

    @staticmethod
    def ack_codes(key: str) -> list[str]:
        return send_acks_table.get(key) or []

    async def publish(self, snapshots: list[EntitySnapshot]) -> tuple[dict[str, EntitySnapshot], Pending]:
        return await super().publish([snapshot.derive(acks=self.ack_codes(snapshot.entity)) for snapshot in snapshots])

    async def after_fetch(self, tenant: str, records: list[Any]) -> Pending:
        return await request(email_requests, tenant, "email", {r.email_id for r in records if r.email_id})


class EmailResolver(Resolver):
    async def after_fetch(self, tenant: str, records: list[Any]) -> Pending:
        return await request(category_requests, tenant, "category", {r.category_id for r in records if r.category_id})


class CategoryResolver(Resolver):
    """Folders are fetched with their parents up to the root, so each snapshot carries its full path."""

    async def fetch_and_store(self, tenant: str, attempts: Mapping[str, int]) -> None:
        await super().fetch_and_store(tenant, attempts)
        await self._fetch_parents(tenant)

    async def _fetch_parents(self, tenant: str) -> None:
        # parents are fetched level by level until every known folder's chain reaches the root
        while parents := sorted(self._missing_parents(tenant)):
            await super().fetch_and_store(tenant, dict.fromkeys(parents, settings.entity_fetch_attempts - 1))

    def _missing_parents(self, tenant: str) -> set[str]:
        missing = set()
        for snapshot in self.table.values():
            parent = snapshot.data.get("parent_id")
            if snapshot.tenant == tenant and parent:
                parent_key = entity(tenant, "category", parent)
                if parent_key not in self.table and parent_key not in self.retries:
                    missing.add(str(parent))
        return missing

    async def publish(self, snapshots: list[EntitySnapshot]) -> tuple[dict[str, EntitySnapshot], Pending]:
        """A folder is published once its path is complete, and a new parent completes its children: the
        entries returned are the fetched folders and every folder completed, with its path."""
        entries = {snapshot.entity: snapshot for snapshot in snapshots}
        tenants = {snapshot.tenant for snapshot in snapshots}
        pathless = {key: snapshot for key, snapshot in self.table.items()
                    if snapshot.tenant in tenants and "path" not in snapshot.data}
        ready = []
        for key, snapshot in {**pathless, **entries}.items():
            path = self._path(snapshot, entries)
            if path is not None:
                entries[key] = snapshot.derive(data={**snapshot.data, "path": path})
                ready.append(entries[key])
        return entries, await publish_snapshots(ready)

    def _path(self, snapshot: EntitySnapshot, fetched: dict[str, EntitySnapshot]) -> list[str] | None:
        """The names from the root down to the folder, from ``fetched`` and the table; None while a parent is
        unknown (or the parents loop)."""
        names = [snapshot.data["name"]]
        seen = {snapshot.entity}
        parent = snapshot.data.get("parent_id")
        while parent:
            parent_key = entity(snapshot.tenant, "category", parent)
            parent_snapshot = fetched.get(parent_key) or self.table.get(parent_key)
            if parent_snapshot is None or parent_key in seen:
                return None
            seen.add(parent_key)
            names.append(parent_snapshot.data["name"])
            parent = parent_snapshot.data.get("parent_id")
        return names[::-1]


sends = SendResolver("send", sends_table, send_requests, lambda client, ids: client.sends(ids))
subscribers = Resolver("subscriber", subscribers_table, subscriber_requests,
                       lambda client, ids: client.subscribers(ids))
emails = EmailResolver("email", emails_table, email_requests, lambda client, ids: client.emails(ids))
categories = CategoryResolver("category", categories_table, category_requests,
                              lambda client, ids: client.folders(ids))
