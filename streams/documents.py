"""MongoDB documents of SPEC section 5, built from entity snapshots (pure functions).

Every builder returns a ``pymongo.UpdateOne`` upsert keyed on ``entity`` whose ``_id`` on insert is
derived from the entity, so the same snapshots always produce the same documents. A reference to another
model stores that document's actual ``_id``, given as ``ids`` (``streams.entity_ids.References``: entity →
``_id``; it must hold every entity the builder refers to, see the ``*_ref`` functions).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo import UpdateMany, UpdateOne

from streams.entity_ids import NAMESPACES, EntityType, References, entity, object_id, parse_entity
from streams.topic_records import EntitySnapshot

IDENTITY_FIELDS = {
    "First Name": "givenName",
    "Last Name": "familyName",
    "Title": "title",
    "Company Name": "companyName",
    "Address": "street",
    "City": "city",
    "State": "region",
    "Zip": "postalCode",
    "Country": "country",
    "Phone Number": "phoneNumber",
    "Industry": "attributes.Industry",
    "Job Function": "attributes.Job Function",
    "NAICS Code": "attributes.NAICS Code",
}
TEST_SEND_PREFIXES = ("test send", "[test]:")

Flags = Mapping[str, bool]
"""``rollupMetrics`` and ``isNewsletter`` of a category or deployment, as stored."""


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _date(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value).astimezone(UTC) if value else None


def category_name(name: str) -> str:
    """A folder name as stored: stripped, and ``my emails`` (any case) shown as ``My Emails``."""
    return "My Emails" if name.strip().lower() == "my emails" else name.strip()


def is_test_send(subject: str | None) -> bool:
    """Whether a subject marks a test send: it starts with ``test send`` or ``[test]:``, any case."""
    return (subject or "").strip().lower().startswith(TEST_SEND_PREFIXES)


def _upsert(snapshot: EntitySnapshot, fields: dict[str, Any], on_insert: dict[str, Any] | None = None,
            unset: Iterable[str] = ()) -> UpdateOne:
    """The common shape: ``entity`` + ``externalSource`` + the model's own fields."""
    _, kind, ident = parse_entity(snapshot.entity)
    data = snapshot.data
    created = _date(data.get("created_date"))
    update: dict[str, Any] = {
        "$set": {
            "entity": snapshot.entity,
            "externalSource.namespace": NAMESPACES[kind],
            "externalSource.identifier": ident,
            "externalSource.lastRetrievedAt": _utc(snapshot.retrieved_at),
            "externalSource.createdAt": created,
            "externalSource.updatedAt": _date(data.get("modified_date")) or created,
            **fields,
        },
        "$setOnInsert": {"_id": object_id(snapshot.entity), **(on_insert or {})},
    }
    if unset := list(unset):
        update["$unset"] = dict.fromkeys(unset, "")
    return UpdateOne({"entity": snapshot.entity}, update, upsert=True)


def identity_update(snapshot: EntitySnapshot) -> UpdateOne:
    """The ``identities`` upsert of a subscriber snapshot: ``emailAddress`` trimmed and lower case, each of the
    ``IDENTITY_FIELDS`` its attributes fill set (trimmed), the others unset; ``fieldCount`` = 1 + those filled."""
    data = snapshot.data
    email = (data.get("email_address") or "").strip().lower()
    attributes: Mapping[str, str] = data.get("attributes") or {}
    mapped = {field: (attributes.get(name) or "").strip() for name, field in IDENTITY_FIELDS.items()}
    present = {field: value for field, value in mapped.items() if value}
    return _upsert(
        snapshot,
        {"emailAddress": email, "emailDomain": email.partition("@")[2], "fieldCount": 1 + len(present),
         **present},
        on_insert={"inactive": False, "inactiveCustomerIds": [], "inactiveCampaignIds": [],
                   "inactiveLineItemIds": [], "createdAt": _utc(snapshot.retrieved_at)},
        unset=(field for field, value in mapped.items() if not value),
    )


def category_update(snapshot: EntitySnapshot, ids: References) -> UpdateOne:
    """The ``email-categories`` upsert of a folder snapshot, whose ``data`` holds ``name``, ``parent_id`` and
    ``path`` (the folder names from the root down); ``ids`` must hold its parent's entity, if any (else
    ``KeyError``)."""
    data = snapshot.data
    return _upsert(
        snapshot,
        {"name": category_name(data["name"]),
         "fullName": " | ".join(category_name(name) for name in data["path"]),
         "parentId": _id_of(parent_ref(snapshot), ids)},
        on_insert={"hasDeployments": False, "rollupMetrics": False, "isNewsletter": False},
    )


def category_has_deployments(tenant: str, category_id: int | str) -> UpdateOne:
    """Flag the folder of an email we saw; creates a stub the folder's own snapshot fills in."""
    key = entity(tenant, "category", category_id)
    return UpdateOne(
        {"entity": key},
        {"$set": {"hasDeployments": True},
         "$setOnInsert": {"_id": object_id(key), "rollupMetrics": False, "isNewsletter": False}},
        upsert=True,
    )


def _ref(snapshot: EntitySnapshot, field: str, kind: EntityType) -> str | None:
    ident = snapshot.data.get(field)
    return entity(snapshot.tenant, kind, ident) if ident else None


def parent_ref(snapshot: EntitySnapshot) -> str | None:
    """The entity of a folder's parent folder, if it has one."""
    return _ref(snapshot, "parent_id", "category")


def category_ref(snapshot: EntitySnapshot) -> str | None:
    """The entity of an email's category, if it has one."""
    return _ref(snapshot, "category_id", "category")


def _id_of(entity_ref: str | None, ids: References) -> ObjectId | None:
    """The ``_id`` a reference to another model stores (SPEC 4), or None when there is no such model."""
    return ids[entity_ref] if entity_ref else None


def _copied_flags(parent: Flags) -> dict[str, bool]:
    return {name: bool(parent.get(name, False)) for name in ("rollupMetrics", "isNewsletter")}


def deployment_update(snapshot: EntitySnapshot, category: Flags, ids: References) -> UpdateOne:
    """The ``email-deployments`` upsert of an email snapshot, with the flags of ``category`` (False where absent);
    ``ids`` must hold its category's entity, if any (else ``KeyError``)."""
    data = snapshot.data
    return _upsert(snapshot, {
        "name": data.get("name"),
        "subject": data.get("subject"),
        "categoryId": _id_of(category_ref(snapshot), ids),
        **_copied_flags(category),
    })


def deployment_sends_update(deployment_id: ObjectId, category: Flags) -> UpdateMany:
    """Copy a deployment's flags (its category's) to the sends that reference it: a send is usually written
    before its email is fetched, and an adopted folder may hold flags an editor set."""
    return UpdateMany({"deploymentId": deployment_id}, {"$set": _copied_flags(category)})


def deployment_ref(snapshot: EntitySnapshot) -> str | None:
    """The entity of a send's email (its deployment), if it has one."""
    return _ref(snapshot, "email_id", "email")


def sent_date(snapshot: EntitySnapshot) -> datetime | None:
    """SentDate, aware in UTC; a send still ``Sending`` without one counts as sent when it was retrieved; None
    for any other send without one."""
    data = snapshot.data
    sent = _date(data.get("sent_date"))
    if sent is None and (data.get("status") or "").lower() == "sending":
        return _utc(snapshot.retrieved_at)
    return sent


def send_update(snapshot: EntitySnapshot, deployment: Flags, ids: References) -> UpdateOne:
    """The ``email-sends`` upsert of a send snapshot (counts 0 where absent), with the flags of ``deployment``
    (False where absent); ``ids`` must hold its email's entity, if any (else ``KeyError``)."""
    data = snapshot.data
    return _upsert(snapshot, {
        "name": data.get("email_name"),
        "fromEmail": data.get("from_address"),
        "fromName": data.get("from_name"),
        "subject": data.get("subject"),
        "url": data.get("preview_url"),
        "status": data.get("status"),
        "sentDate": sent_date(snapshot),
        "metrics": {
            "sent": data.get("number_sent", 0),
            "delivered": data.get("number_delivered", 0),
            "uniqueOpens": data.get("unique_opens", 0),
            "uniqueClicks": data.get("unique_clicks", 0),
            "unsubscribes": data.get("unsubscribes", 0),
            "forwards": data.get("forwarded_emails", 0),
            "bounces": sum(data.get(name) or 0 for name in ("hard_bounces", "soft_bounces", "other_bounces")),
        },
        "isTestSend": is_test_send(data.get("subject")),
        "deploymentId": _id_of(deployment_ref(snapshot), ids),
        **_copied_flags(deployment),
    })


def send_url_updates(send: EntitySnapshot, category_entity: str | None, url_ids: Mapping[str, list[ObjectId]],
                     ids: References, acks: Iterable[str] | None = None) -> list[UpdateOne]:
    """One ``email-send-urls`` upsert per url id of ``acks`` (default: each ack seen with the send);
    ``url_ids`` maps an ack to its urlIds (``url-acknowledgments``); ``ids`` holds the send, its deployment
    and ``category_entity``."""
    send_id = ids[send.entity]
    on_insert = {
        "deploymentId": _id_of(deployment_ref(send), ids),
        "categoryId": _id_of(category_entity, ids),
        "isTestSend": is_test_send(send.data.get("subject")),
    }
    urls = sorted({url for ack in (send.acks or () if acks is None else acks) for url in url_ids.get(ack, ())})
    return [
        UpdateOne(
            {"sendId": send_id, "urlId": url},
            {"$set": {"sentDate": sent_date(send)},
             "$setOnInsert": {"_id": object_id(f"send-url|{send.entity}|{url}"), **on_insert}},
            upsert=True,
        )
        for url in urls
    ]


def processed_event_update(guid: str, at: float) -> UpdateOne:
    """The 10006 fallback: a row SFMC will not mark counts as processed through ``processed-events``; ``date``
    is ``at`` (epoch seconds), set on insert only."""
    return UpdateOne({"guid": guid}, {"$setOnInsert": {"date": _utc(at)}}, upsert=True)
