"""The resolvers that fill the entity tables (sends, subscribers, emails, categories) from SFMC.

A resolver takes the requests gathered over a short window, keeps the ids whose table entry is missing
or older than the refresh period, fetches them with ``IN`` requests of up to ``in_batch_size`` ids per
business unit (concurrently; the client limits calls per BU), publishes the fetched snapshots on
``entity-changes`` (one record per fetch), requests what they refer to and, once Kafka has both, stores each
snapshot in its table: a worker that dies before then leaves no entry that would stop the request, read again,
from producing them again.
Ids SFMC does not return are retried with backoff, then dead-lettered and asked again only after the refresh
period (not with every click on them); while SFMC itself fails they are retried until it answers. Pending
retries live in a table, so restarts keep them; they never hold up other keys.

The resolvers receive what they use (their tables, from ``streams.tables.catalog``; the SFMC client of each
tenant; where their outputs go; their settings and clock), so they run without a worker; ``streams.topology``
builds them on a worker's tables and topics and feeds them. Their Prometheus metrics are the process's
(``streams.metrics``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection, ItemsView, Iterable, Mapping, Sequence, ValuesView
from dataclasses import dataclass
from typing import Any, Protocol, TypedDict, TypeVar

from streams import metrics
from streams.entity_ids import EntityType, entity, snapshot_data
from streams.marketing_cloud import MarketingCloudError
from streams.marketing_cloud.records import DataFolder, Email, Send, Subscriber
from streams.topic_records import EntityRequest, EntitySnapshot
from streams.topics import Pending, partition_of

log = logging.getLogger(__name__)
V = TypeVar("V")


class Table(Protocol[V]):
    """What a resolver asks of a table (in a worker, a ``streams.tables.keyed.KeyedTable``): a mapping by entity
    key, written a batch at a time."""

    def get(self, key: str) -> V | None:
        """The value of ``key``, None if it has none."""
        ...

    def __contains__(self, key: object) -> bool: ...

    def items(self) -> ItemsView[str, V]: ...

    def values(self) -> ValuesView[V]: ...

    def field(self, key: str, name: str) -> Any:
        """Field ``name`` of the value of ``key``, None when it has none."""
        ...

    async def write(self, entries: Mapping[str, V | None]) -> None:
        """Set each key to its value (None: delete the key); returns once the table has them durably."""
        ...


class Retry(TypedDict):
    """A pending retry (the value of a retries table, by entity): the id of ``tenant`` to request again at
    ``due`` (epoch seconds), as its ``attempt``-th retry (0 is the first ask)."""

    tenant: str
    id: str
    attempt: int
    due: float


@dataclass(frozen=True)
class ResolverSettings:
    """``in_batch_size``: ids per ``IN`` request; ``refresh_seconds``: age of a table entry (seconds) past which
    it is fetched again, and how long a dead-lettered id waits before it is asked again; ``fetch_attempts``:
    attempts before an id SFMC does not return is dead-lettered (at least 1)."""

    in_batch_size: int
    refresh_seconds: float
    fetch_attempts: int


class Client(Protocol):
    """What the resolvers ask of a business unit's SFMC client (``streams.marketing_cloud.MarketingCloudClient``):
    the records found among ``ids`` (ids SFMC does not know are left out); each raises ``MarketingCloudError``
    when SFMC fails."""

    async def sends(self, ids: Iterable[int | str]) -> list[Send]:
        """The sends of ``ids`` that SFMC returns."""
        ...

    async def subscribers(self, ids: Iterable[int | str]) -> list[Subscriber]:
        """The subscribers of ``ids`` that SFMC returns."""
        ...

    async def emails(self, ids: Iterable[int | str]) -> list[Email]:
        """The emails of ``ids`` that SFMC returns (Content Builder assets by legacy id, else classic emails)."""
        ...

    async def folders(self, ids: Iterable[int | str]) -> list[DataFolder]:
        """The data folders (email categories) of ``ids`` that SFMC returns."""
        ...


Fetch = Callable[[Client, list[str]], Awaitable[Sequence[Any]]]

FETCHES: dict[EntityType, Fetch] = {
    "send": lambda client, ids: client.sends(ids),
    "subscriber": lambda client, ids: client.subscribers(ids),
    "email": lambda client, ids: client.emails(ids),
    "category": lambda client, ids: client.folders(ids),
}
"""How each kind's records are fetched from a client."""


class Outputs(Protocol):
    """Where the resolvers put what they make (the topics in a worker:
    ``streams.outputs.KafkaResolverOutputs``); every call but ``room`` returns the futures that say Kafka
    has it."""

    async def snapshots(self, snapshots: Sequence[EntitySnapshot]) -> Pending:
        """Snapshots on ``entity-changes``, in order (none: no record)."""
        ...

    async def entity_requests(self, tenant: str, kind: EntityType, ids: Iterable[int | str],
                              attempt: int = 0) -> Pending:
        """Requests for the ``kind`` entities ``ids`` of ``tenant``, each asked ``attempt`` times before."""
        ...

    async def dead_letter(self, tenant: str, kind: EntityType, key: str, reason: str) -> Pending:
        """Entity ``key`` that SFMC did not return in any attempt: dead-lettered, stage ``resolve-{kind}``."""
        ...

    async def room(self) -> None:
        """Return once the producer has room for more records; raises ``RuntimeError`` when it lost the records
        it held (the batch being handled must not be acked)."""
        ...


class Resolver:
    """Fetch-on-miss for one entity kind; subclasses add what a kind refers to.

    ``table``: the kind's snapshots by entity; ``retries``: its pending retries by entity (``Retry``); both
    spread over ``partitions`` partitions, like the kind's request topic. ``client(tenant)``: the tenant's SFMC
    client; ``clock()``: the time, in epoch seconds.
    """

    def __init__(self, kind: EntityType, table: Table[EntitySnapshot],
                 retries: Table[Retry], partitions: int, client: Callable[[str], Client],
                 outputs: Outputs, settings: ResolverSettings, *, clock: Callable[[], float] = time.time) -> None:
        self.kind = kind
        self.table = table
        self.retries = retries
        self.partitions = partitions
        self.client = client
        self.outputs = outputs
        self.settings = settings
        self.clock = clock
        self.fetch = FETCHES[kind]
        self._requeued: dict[str, int] = {}

    def stale(self, key: str, now: float) -> bool:
        """Whether entity ``key`` is missing from the table or was retrieved more than ``refresh_seconds``
        before ``now`` (epoch seconds)."""
        retrieved_at = self.table.field(key, "retrieved_at")
        return retrieved_at is None or now - retrieved_at > self.settings.refresh_seconds

    async def resolve(self, requests: Sequence[EntityRequest]) -> None:
        """Fetch the window's wanted ids: one ``IN`` call per BU and ``in_batch_size`` ids, whatever attempt
        each id is at (first asks and due retries share the calls). Returns once the table holds what was
        fetched and Kafka has what that produced. Raises ``RuntimeError`` when the producer lost records."""
        now = self.clock()
        await self.on_requests(requests)
        wanted: dict[str, dict[str, int]] = defaultdict(dict)  # tenant → id → attempt
        for req in requests:
            for ident in req.ids:
                key = entity(req.tenant, self.kind, ident)
                # an entry's age first: most ids asked for are fresh, and those need no look at the retries
                if (req.refetch or self.stale(key, now)) and (req.attempt or req.refetch or key not in self.retries):
                    attempts = wanted[req.tenant]
                    attempts[ident] = max(req.attempt, attempts.get(ident, 0))
        batch = self.settings.in_batch_size
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
            fetching = self.fetch(self.client(tenant), ids)
            records = await metrics.timed(metrics.sfmc_calls, fetching, call=self.kind, tenant=tenant)
        except MarketingCloudError as exc:
            log.warning("fetching %d %s(s) of %s failed: %s", len(ids), self.kind, tenant, exc)
            # SFMC being unwell is no verdict on the ids: they are tried again until it answers
            await self.retry(tenant, attempts, f"SFMC error: {exc}", verdict=False)
            return
        retrieved_at = self.clock()
        found = {str(record.id): record for record in records}
        metrics.entities_fetched.labels(kind=self.kind).inc(len(found))
        snapshots = [EntitySnapshot(entity=entity(tenant, self.kind, record.id), tenant=tenant, kind=self.kind,
                                    data=snapshot_data(record), retrieved_at=retrieved_at)
                     for record in found.values()]
        entries, pending = await self.publish(snapshots)
        pending += await self.after_fetch(tenant, list(found.values()))
        # the table learns of the snapshots only once Kafka has what they produce: a worker that dies before
        # then leaves them missing from the table, so the request, read again, fetches them again
        await asyncio.gather(*pending)
        await self.outputs.room()  # room in the producer buffer first: the window's fetches store one after another
        await self.table.write(entries)
        await self._forget_retries([snapshot.entity for snapshot in snapshots])
        if missing := {ident: attempt for ident, attempt in attempts.items() if ident not in found}:
            await self.retry(tenant, missing, f"SFMC returned no {self.kind} with this ID", verdict=True)

    async def publish(self, snapshots: list[EntitySnapshot]) -> tuple[dict[str, EntitySnapshot], Pending]:
        """Put fetched snapshots on ``entity-changes``; return the table entries to store once Kafka has them
        (by entity), and the futures that say so."""
        return {snapshot.entity: snapshot for snapshot in snapshots}, await self.outputs.snapshots(snapshots)

    async def after_fetch(self, tenant: str, records: list[Any]) -> Pending:
        """Hook: request the entities these records refer to; returns the requests' futures."""
        return []

    async def retry(self, tenant: str, attempts: Mapping[str, int], reason: str, *, verdict: bool) -> None:
        """Ask again later with backoff (due ``2 ** attempt`` seconds from now, at most a minute); ``attempts``:
        id → attempts before this one. When ``verdict`` (SFMC answered without the id), an id whose attempts are
        used up is dead-lettered and asked once more only after the refresh period, with its last attempt:
        until then, requests for it (every new click on an unknown send) are not fetched again (SPEC 6.3)."""
        now = self.clock()
        last = self.settings.fetch_attempts - 1
        keys = {ident: entity(tenant, self.kind, ident) for ident in attempts}
        final = {ident for ident, attempt in attempts.items() if verdict and attempt >= last}
        # the dead letters are in Kafka before the table says they were written
        await asyncio.gather(*[future for ident in final for future in await self.outputs.dead_letter(
            tenant, self.kind, keys[ident], f"{reason} (after {attempts[ident] + 1} attempts)")])
        retries: dict[str, Retry | None] = {}
        for ident, attempt in attempts.items():
            key = keys[ident]
            if ident in final:
                self._requeued.pop(key, None)
                retries[key] = {"tenant": tenant, "id": ident, "attempt": last,
                                "due": now + self.settings.refresh_seconds}
            else:
                retries[key] = {"tenant": tenant, "id": ident, "attempt": attempt + 1,
                                "due": now + min(2.0**attempt, 60.0)}
        await self.retries.write(retries)

    async def _forget_retries(self, keys: Collection[str]) -> None:
        """Delete the pending retries of ``keys`` that have one."""
        await self.retries.write({key: None for key in keys if key in self.retries})
        for key in keys:
            self._requeued.pop(key, None)

    async def requeue_due(self, owned: Collection[int]) -> None:
        """Request again the retries now due whose request partition is in ``owned`` (the partitions of the
        kind's request topic this worker consumes: it owns their keys; standbys hold copies too), each retry
        once per attempt. Returns once the requests are sent (not waiting for Kafka to have them)."""
        now = self.clock()
        due: dict[tuple[str, int], list[str]] = defaultdict(list)
        for key, retry in list(self.retries.items()):
            if (retry["due"] <= now and self._requeued.get(key) != retry["attempt"]
                    and partition_of(key, self.partitions) in owned):
                self._requeued[key] = retry["attempt"]
                due[retry["tenant"], retry["attempt"]].append(retry["id"])
        for (tenant, attempt), ids in due.items():
            await self.outputs.entity_requests(tenant, self.kind, ids, attempt=attempt)


class SendResolver(Resolver):
    """Sends also carry the acknowledgement codes seen with them (``acks``: send entity → codes, the
    ``send-acks`` table); new codes republish the snapshot."""

    def __init__(self, kind: EntityType, table: Table[EntitySnapshot],
                 retries: Table[Retry], partitions: int, client: Callable[[str], Client],
                 outputs: Outputs, settings: ResolverSettings, *, acks: Table[list[str]],
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(kind, table, retries, partitions, client, outputs, settings, clock=clock)
        self.acks = acks

    async def on_requests(self, requests: Sequence[EntityRequest]) -> None:
        """Note the window's new ack codes (one ``send-acks`` write per send) and republish each fresh send that
        gained some, once, on ``entity-changes`` only: its table entry is unchanged (acks are read from
        ``send-acks`` whenever it is published)."""
        codes: dict[str, set[str]] = defaultdict(set)
        for req in requests:
            for ident, ack_codes in (req.acks or {}).items():
                codes[entity(req.tenant, "send", ident)].update(ack_codes)
        now, republish, learned = self.clock(), [], {}
        for key, seen in codes.items():
            known = self.ack_codes(key)
            if new := seen - set(known):
                learned[key] = acks = sorted(set(known) | new)
                snapshot = self.table.get(key)
                if snapshot is not None and not self.stale(key, now):
                    republish.append(snapshot.derive(acks=acks))
        await asyncio.gather(*await self.outputs.snapshots(republish))  # in Kafka before the codes count as known
        await self.acks.write(learned)

    def ack_codes(self, key: str) -> list[str]:
        """The ack codes known for send entity ``key`` (none: empty)."""
        return self.acks.get(key) or []

    async def publish(self, snapshots: list[EntitySnapshot]) -> tuple[dict[str, EntitySnapshot], Pending]:
        """``Resolver.publish``, each snapshot carrying the send's known ack codes (``acks``)."""
        return await super().publish([snapshot.derive(acks=self.ack_codes(snapshot.entity)) for snapshot in snapshots])

    async def after_fetch(self, tenant: str, records: list[Any]) -> Pending:
        """Request the sends' emails (``Send.email_id``, where set); returns the requests' futures."""
        return await self.outputs.entity_requests(tenant, "email", {r.email_id for r in records if r.email_id})


class EmailResolver(Resolver):
    """Emails also request their categories (``Email.category_id``)."""

    async def after_fetch(self, tenant: str, records: list[Any]) -> Pending:
        """Request the emails' categories (``Email.category_id``, where set); returns the requests' futures."""
        return await self.outputs.entity_requests(tenant, "category",
                                                  {r.category_id for r in records if r.category_id})


class CategoryResolver(Resolver):
    """Folders are fetched with their parents up to the root, so each snapshot carries its full path."""

    async def fetch_and_store(self, tenant: str, attempts: Mapping[str, int]) -> None:
        """``Resolver.fetch_and_store``, then the tenant's missing parent folders, level by level up to the root;
        each is asked at its last attempt, so a parent SFMC does not return is dead-lettered at once."""
        await super().fetch_and_store(tenant, attempts)
        await self._fetch_parents(tenant)

    async def _fetch_parents(self, tenant: str) -> None:
        # parents are fetched level by level until every known folder's chain reaches the root
        while parents := sorted(self._missing_parents(tenant)):
            await super().fetch_and_store(tenant, dict.fromkeys(parents, self.settings.fetch_attempts - 1))

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
        return entries, await self.outputs.snapshots(ready)

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

