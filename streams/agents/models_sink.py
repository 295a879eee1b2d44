"""Models sink: entity snapshots become identities, email-categories, email-deployments, email-sends and
email-send-urls documents, written in unordered bulks, parents before the models that copy from them."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Iterable, MutableMapping, Sequence
from typing import Any

from bson import ObjectId
from pymongo import UpdateMany, UpdateOne

from streams import documents
from streams.adoption import check_adopted
from streams.app import app, settings
from streams.batches import each_batch
from streams.models import DeadLetterStage, EntityChanges, EntitySnapshot
from streams.mongo import bulk_upsert, with_backoff
from streams.references import DocumentIds
from streams.resources import document_ids, mongo
from streams.tables.links import send_links
from streams.topics import entity_changes, send_dead_letter

FLAGS = {"_id": 0, "entity": 1, "rollupMetrics": 1, "isNewsletter": 1}


@app.agent(entity_changes)
async def models_sink(stream):
    await check_adopted(mongo(), settings.legacy_tenant)
    await each_batch(stream, settings.sink_batch, settings.sink_within, write_changes)


async def write_changes(batch: list[EntityChanges]) -> None:
    """Write the models of a batch of ``entity-changes`` records."""
    await write_models([snapshot for changes in batch for snapshot in changes.snapshots], send_links, document_ids())


async def write_models(batch: Sequence[EntitySnapshot], links: MutableMapping[str, Any],
                       document_ids: DocumentIds) -> None:
    """Write the batch's models; ``links`` is the send/email join state (the table, or a dict in replay);
    references store the ``_id``s ``document_ids`` resolves."""
    latest = {snapshot.entity: snapshot for snapshot in batch}  # a later snapshot supersedes
    by_kind: dict[str, list[EntitySnapshot]] = defaultdict(list)
    for snapshot in latest.values():
        by_kind[snapshot.kind].append(snapshot)
    categories, emails, sends = by_kind["category"], by_kind["email"], by_kind["send"]
    ids = await document_ids.resolve([
        *map(documents.parent_ref, categories), *map(documents.category_ref, emails),
        *(s.entity for s in emails), *map(documents.deployment_ref, sends), *(s.entity for s in sends),
    ])
    await _upsert("identities", [(s, documents.identity_update(s)) for s in by_kind["subscriber"]])
    await _upsert("email-categories", [(s, documents.category_update(s, ids)) for s in categories])
    category_flags = await _flags("email-categories", (documents.category_ref(s) for s in emails))
    flags_of = [(s, category_flags.get(documents.category_ref(s) or "", {})) for s in emails]
    await _upsert("email-deployments", [(s, documents.deployment_update(s, flags, ids)) for s, flags in flags_of])
    await _upsert("email-sends", [(s, documents.deployment_sends_update(ids[s.entity], flags))
                                  for s, flags in flags_of])
    await _upsert("email-categories", [
        (s, documents.category_has_deployments(s.tenant, s.data["category_id"])) for s in emails
        if s.data.get("category_id")
    ])
    deployment_flags = await _flags("email-deployments", (documents.deployment_ref(s) for s in sends))
    await _upsert("email-sends", [
        (s, documents.send_update(s, deployment_flags.get(documents.deployment_ref(s) or "", {}), ids)) for s in sends
    ])
    await _write_send_urls(_join(emails, sends, links), links, document_ids)


async def _upsert(collection: str, writes: Sequence[tuple[EntitySnapshot, UpdateOne | UpdateMany]]) -> None:
    """One bulk of ``(snapshot, one of its writes)``: the others are written, and the snapshot of a write
    MongoDB refuses is dead-lettered with the reason (stage ``write-models``, source ``{"entity": entity}``)."""
    refused = await bulk_upsert(collection, [op for _, op in writes])
    await asyncio.gather(*[await send_dead_letter(
        writes[index][0].entity, DeadLetterStage.WRITE_MODELS,
        f"MongoDB refused its {collection} document: {reason}",
        writes[index][0].tenant, {"entity": writes[index][0].entity}) for index, reason in refused.items()])


async def _flags(collection: str, entities: Iterable[str | None]) -> dict[str, dict[str, Any]]:
    wanted = sorted({key for key in entities if key})
    if not wanted:
        return {}
    docs = await with_backoff(f"read {collection}", lambda: mongo()[collection].find(
        {"entity": {"$in": wanted}}, FLAGS).to_list())
    return {doc["entity"]: doc for doc in docs}


def _join(emails: Iterable[EntitySnapshot], sends: Iterable[EntitySnapshot],
          send_links: MutableMapping[str, Any]) -> list[tuple[EntitySnapshot, str]]:
    """Record the batch in the join table; return each send whose email's category is now known."""
    ready: dict[str, tuple[EntitySnapshot, str]] = {}
    for email in emails:
        link = dict(send_links.get(email.entity) or {})
        link["category"] = documents.category_ref(email) or ""
        send_links[email.entity] = link
        for send_key in link.get("sends", []):
            ready[send_key] = (EntitySnapshot.from_data(send_links[send_key]["send"]), link["category"])
    for send in sends:
        send_links[send.entity] = {**(send_links.get(send.entity) or {}), "send": send.asdict()}
        email_key = documents.deployment_ref(send)
        if email_key is None:
            continue
        link = dict(send_links.get(email_key) or {})
        if send.entity not in link.get("sends", []):
            link["sends"] = [*link.get("sends", []), send.entity]
            send_links[email_key] = link
        if "category" in link:
            ready[send.entity] = (send, link["category"])
    return list(ready.values())


async def _write_send_urls(ready: list[tuple[EntitySnapshot, str]], links: MutableMapping[str, Any],
                           document_ids: DocumentIds) -> None:
    """Upsert the url documents of each ready send's acks not written yet (all of them when its sent date
    changed), and note in the send's link what is written: a send is republished with every new ack code."""
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
    docs = await with_backoff("read url-acknowledgments", lambda: mongo()["url-acknowledgments"].find(
        {"shortId": {"$in": codes}}, {"_id": 0, "shortId": 1, "urlIds": 1}).to_list())
    url_ids: dict[str, list[ObjectId]] = defaultdict(list)
    for doc in docs:
        url_ids[doc["shortId"]].extend(ObjectId(url) for url in doc.get("urlIds", []))
    ids = await document_ids.resolve(key for send, category, _, _, _ in todo
                                     for key in (send.entity, documents.deployment_ref(send), category or None))
    await _upsert("email-send-urls", [
        (send, op) for send, category, new, _, _ in todo
        for op in documents.send_url_updates(send, category or None, url_ids, ids, new)
    ])
    for send, _, new, written, stamp in todo:
        # an ack without url-acknowledgments yet is looked up again with the send's next republish
        done = written | {ack for ack in new if ack in url_ids}
        links[send.entity] = {**links[send.entity], "acks_written": sorted(done), "sent": stamp}
