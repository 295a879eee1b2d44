"""Models sink: entity snapshots become identities, email-categories, email-deployments, email-sends and
email-send-urls documents, written in unordered bulks, parents before the models that copy from them.

``ModelsSink`` receives what it uses (the database, the send/email join state, the ``_id``s of references,
where its dead letters go), so it runs without a worker; ``streams.topology`` has the agent that feeds
it, and replay writes through it too. ``join`` is the send/email join: a send's urls are written once its
email's category is known.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, MutableMapping, Sequence
from typing import Any, Protocol

from bson import ObjectId
from pymongo import UpdateMany, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from streams import documents
from streams.mongo import bulk_upsert, with_backoff
from streams.references import DocumentIds
from streams.topic_records import EntityChanges, EntitySnapshot
from streams.topics import Pending

FLAGS = {"_id": 0, "entity": 1, "rollupMetrics": 1, "isNewsletter": 1}


class Outputs(Protocol):
    """Where the models sink puts the models it could not write (the topics in a worker:
    ``streams.outputs.KafkaModelOutputs``); returns the futures that say Kafka has it."""

    async def dead_letter(self, snapshot: EntitySnapshot, reason: str) -> Pending:
        """A snapshot one of whose documents MongoDB refused: dead-lettered, stage ``write-models``."""
        ...


class ModelsSink:
    """Writes batches of ``entity-changes`` records into ``db``. ``links`` is the send/email join state (the
    ``send_links`` table, or a dict in replay; see ``join``); references store the ``_id``s ``document_ids``
    resolves."""

    def __init__(self, db: AsyncDatabase, links: MutableMapping[str, Any], document_ids: DocumentIds,
                 outputs: Outputs) -> None:
        self.db = db
        self.links = links
        self.document_ids = document_ids
        self.outputs = outputs

    async def write(self, batch: Sequence[EntityChanges]) -> None:
        """Write the models of the batch's snapshots (a later snapshot of an entity supersedes an earlier one);
        a snapshot one of whose writes MongoDB refuses is dead-lettered, its other writes are made. Returns when
        Kafka has the dead letters. Raises pymongo errors that are not transient."""
        latest = {snapshot.entity: snapshot for changes in batch for snapshot in changes.snapshots}
        by_kind: dict[str, list[EntitySnapshot]] = defaultdict(list)
        for snapshot in latest.values():
            by_kind[snapshot.kind].append(snapshot)
        categories, emails, sends = by_kind["category"], by_kind["email"], by_kind["send"]
        ids = await self.document_ids.resolve([
            *map(documents.parent_ref, categories), *map(documents.category_ref, emails),
            *(s.entity for s in emails), *map(documents.deployment_ref, sends), *(s.entity for s in sends),
        ])
        await self._upsert("identities", [(s, documents.identity_update(s)) for s in by_kind["subscriber"]])
        await self._upsert("email-categories", [(s, documents.category_update(s, ids)) for s in categories])
        category_flags = await self._flags("email-categories", (documents.category_ref(s) for s in emails))
        flags_of = [(s, category_flags.get(documents.category_ref(s) or "", {})) for s in emails]
        await self._upsert("email-deployments", [(s, documents.deployment_update(s, flags, ids))
                                                 for s, flags in flags_of])
        await self._upsert("email-sends", [(s, documents.deployment_sends_update(ids[s.entity], flags))
                                           for s, flags in flags_of])
        await self._upsert("email-categories", [
            (s, documents.category_has_deployments(s.tenant, s.data["category_id"])) for s in emails
            if s.data.get("category_id")
        ])
        deployment_flags = await self._flags("email-deployments", (documents.deployment_ref(s) for s in sends))
        await self._upsert("email-sends", [
            (s, documents.send_update(s, deployment_flags.get(documents.deployment_ref(s) or "", {}), ids))
            for s in sends
        ])
        await self._write_send_urls(join(emails, sends, self.links))

    async def _upsert(self, collection: str, writes: Sequence[tuple[EntitySnapshot, UpdateOne | UpdateMany]]) -> None:
        """One bulk of ``(snapshot, one of its writes)``: the others are written, and the snapshot of a write
        MongoDB refuses is dead-lettered with the reason."""
        refused = await bulk_upsert(self.db[collection], [op for _, op in writes])
        pending: Pending = []
        for index, reason in refused.items():
            pending += await self.outputs.dead_letter(writes[index][0],
                                                      f"MongoDB refused its {collection} document: {reason}")
        await asyncio.gather(*pending)

    async def _flags(self, collection: str, entities: Iterable[str | None]) -> dict[str, dict[str, Any]]:
        wanted = sorted({key for key in entities if key})
        if not wanted:
            return {}
        docs = await with_backoff(f"read {collection}", lambda: self.db[collection].find(
            {"entity": {"$in": wanted}}, FLAGS).to_list())
        return {doc["entity"]: doc for doc in docs}

    async def _write_send_urls(self, ready: list[tuple[EntitySnapshot, str]]) -> None:
        """Upsert the url documents of each ready send's acks not written yet (all of them when its sent date
        changed), and note in the send's link what is written: a send is republished with every new ack code."""
        links = self.links
        todo = []
        for send, category in ready:
            link = links[send.entity]
            sent = documents.sent_date(send)
            stamp = sent.isoformat() if sent else None
            written = set(link.get("acks_written", ())) if link.get("sent") == stamp else set()
            if new := set(send.acks or ()) - written:
                todo.append((send, category, new, written, stamp))
        codes = sorted({ack for _, _, new, _, _ in todo for ack in new})
        if not codes:
            return
        docs = await with_backoff("read url-acknowledgments", lambda: self.db["url-acknowledgments"].find(
            {"shortId": {"$in": codes}}, {"_id": 0, "shortId": 1, "urlIds": 1}).to_list())
        url_ids: dict[str, list[ObjectId]] = defaultdict(list)
        for doc in docs:
            url_ids[doc["shortId"]].extend(ObjectId(url) for url in doc.get("urlIds", []))
        ids = await self.document_ids.resolve(
            key for send, category, _, _, _ in todo for key in (send.entity, documents.deployment_ref(send),
                                                                category or None))
        await self._upsert("email-send-urls", [
            (send, op) for send, category, new, _, _ in todo
            for op in documents.send_url_updates(send, category or None, url_ids, ids, new)
        ])
        for send, _, new, written, stamp in todo:
            # an ack without url-acknowledgments yet is looked up again with the send's next republish
            done = written | {ack for ack in new if ack in url_ids}
            links[send.entity] = {**links[send.entity], "acks_written": sorted(done), "sent": stamp}


def join(emails: Iterable[EntitySnapshot], sends: Iterable[EntitySnapshot],
         links: MutableMapping[str, Any]) -> list[tuple[EntitySnapshot, str]]:
    """Record a batch's emails and sends in the join state ``links`` and return ``(send, category entity or "")``
    of each send whose email's category is now known, each send once: a send whose email came before it, and
    every send already recorded for an email that comes now.

    ``links`` holds, by email entity, ``{"category": its category entity or "", "sends": [send entities]}`` (no
    ``category`` while the email has not come), and by send entity ``{"send": its snapshot as a dict}`` plus
    what ``ModelsSink`` notes of its written urls."""
    ready: dict[str, tuple[EntitySnapshot, str]] = {}
    for email in emails:
        link = dict(links.get(email.entity) or {})
        link["category"] = documents.category_ref(email) or ""
        links[email.entity] = link
        for send_key in link.get("sends", []):
            ready[send_key] = (EntitySnapshot.from_data(links[send_key]["send"]), link["category"])
    for send in sends:
        links[send.entity] = {**(links.get(send.entity) or {}), "send": send.asdict()}
        email_key = documents.deployment_ref(send)
        if email_key is None:
            continue
        link = dict(links.get(email_key) or {})
        if send.entity not in link.get("sends", []):
            link["sends"] = [*link.get("sends", []), send.entity]
            links[email_key] = link
        if "category" in link:
            ready[send.entity] = (send, link["category"])
    return list(ready.values())
