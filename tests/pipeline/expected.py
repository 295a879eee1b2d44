"""What MongoDB, the click log and the dead-letter topic must hold after a clean run over a dataset.

Computed from the generator's dataset and SPEC.md sections 3-6 alone: this module deliberately imports
nothing of ``streams`` (own regexes, own date handling), so a shared misreading cannot make the pipeline
and its expectation agree.

References between documents are written as ``Ref(entity)``; the test resolves the ObjectIds it reads
back to entities (``_id`` values are the pipeline's business). A click on a send SFMC does not know has a
``job`` that resolves to no document: its expected value is ``Ref(entity)`` with ``missing=True``.
"""

from __future__ import annotations

import html.entities
import re
import urllib.parse
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from bson import ObjectId

PRIMARY_KEY = ("ID", "JobID", "SubscriberID", "EventDate", "IsUnique", "ListID")  # the click log DE's

SERVER = timezone(timedelta(hours=-6))  # SFMC server time: fixed UTC-06:00, no daylight saving
CHICAGO = ZoneInfo("America/Chicago")
DE_DATE = "%m/%d/%Y %I:%M:%S %p"
MAX_LINK = 8192

HEXDIGITS = "0123456789abcdefABCDEF"
ACK_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
LEGACY_HOST = "leads.limit0.io"
HOST_CHARS = ACK_CHARS - {"_"}

ATTRIBUTE_FIELDS = {
    "First Name": "givenName", "Last Name": "familyName", "Title": "title", "Company Name": "companyName",
    "Address": "street", "City": "city", "State": "region", "Zip": "postalCode", "Country": "country",
    "Phone Number": "phoneNumber",
}  # fmt: skip
NESTED_ATTRIBUTES = ("Industry", "Job Function", "NAICS Code")

COLLECTIONS = (
    "identities", "email-categories", "email-deployments", "email-sends", "email-send-urls",
    "event-email-clicks", "processed-events",
)  # fmt: skip


@dataclass(frozen=True)
class Ref:
    """A reference to the document whose ``entity`` is this (``missing``: no such document exists)."""

    entity: str
    missing: bool = False


def ent(tenant: str, kind: str, ident: str) -> str:
    return f"mc.{tenant}.{kind}*{ident}"


def link_parts(content: str) -> tuple[str, str] | None:
    """SPEC 3: ``(urlId lower case, ack)`` of the first accepted form giving both, else None.

    Read by splitting the decoded link at the parameter separators ``? & ; #`` (a parameter is a piece
    that starts with its name) and by looking at what follows each ``//`` (or the start) for the legacy host.
    """
    text = _decoded(content)
    pieces = re.split(r"[?&;#]", text)
    for piece in pieces:
        if piece.startswith("lt.lidack="):
            value = piece[len("lt.lidack="):]
            ack = _ack_run(value[25:])
            if _is_hex24(value[:24]) and value[24:25] == "~" and ack:
                return value[:24].lower(), ack
    acks = {name: _first_value(pieces, name + "=", _ack_run) for name in ("ack", "lt.ack")}
    legacy = _legacy_url_id(text)
    if legacy and (acks["ack"] or acks["lt.ack"]):
        return legacy, acks["ack"] or acks["lt.ack"]
    lid = _first_value(pieces, "lt.lid=", _whole_url_id)
    if lid and (acks["lt.ack"] or acks["ack"]):
        return lid, acks["lt.ack"] or acks["ack"]
    return None


def _decoded(content: str) -> str:
    """``&name;`` (a name HTML defines) and ``&#n;``/``&#xh;`` references decoded, then ``%hh`` once."""
    out: list[str] = []
    at = 0
    while (amp := content.find("&", at)) >= 0:
        semi = content.find(";", amp)
        if semi > amp and _is_reference(content[amp + 1:semi]):
            out += [content[at:amp], html.unescape(content[amp:semi + 1])]
            at = semi + 1
        else:
            out.append(content[at:amp + 1])
            at = amp + 1
    return urllib.parse.unquote("".join(out) + content[at:]).strip()


def _is_reference(name: str) -> bool:
    """``name`` between ``&`` and ``;`` makes a character reference: ``#`` + decimal digits, ``#x`` + hex
    digits, or a name HTML5 defines."""
    if name[:2] in ("#x", "#X"):
        return len(name) > 2 and all(c in HEXDIGITS for c in name[2:])
    if name[:1] == "#":
        return len(name) > 1 and all(c in "0123456789" for c in name[1:])
    return name + ";" in html.entities.html5


def _is_hex24(value: str) -> bool:
    return len(value) == 24 and all(c in HEXDIGITS for c in value)


def _ack_run(value: str) -> str:
    """The leading run of ack characters."""
    end = 0
    while end < len(value) and value[end] in ACK_CHARS:
        end += 1
    return value[:end]


def _whole_url_id(value: str) -> str:
    """The url id the value starts with, if it is 24 hex digits not followed by another ack character."""
    return value[:24].lower() if _is_hex24(value[:24]) and value[24:25] not in ACK_CHARS else ""


def _first_value(pieces: list[str], prefix: str, read: Callable[[str], str]) -> str:
    for piece in pieces:
        if piece.startswith(prefix) and (value := read(piece[len(prefix):])):
            return value
    return ""


def _legacy_url_id(text: str) -> str:
    """The url id of the first ``{host}/click/{urlId}`` whose host (at the start or after ``//``) is the
    legacy host or one of its subdomains, with an optional port."""
    starts = [0] + [i + 2 for i in range(len(text) - 1) if text[i:i + 2] == "//"]
    for start in starts:
        slash = text.find("/", start)
        host, colon, port = text[start:slash].partition(":")
        path = text[slash + 1:slash + 32]
        if slash < 0 or not host.isascii() or (colon and not (port and all(c in "0123456789" for c in port))):
            continue
        subdomain, legacy, after = host.lower().rpartition(LEGACY_HOST)
        labels = subdomain.split(".")  # "www." -> ["www", ""]; the legacy host itself -> [""]
        if not legacy or after or labels[-1] or not all(label and set(label) <= HOST_CHARS for label in labels[:-1]):
            continue  # not the legacy host, nor a subdomain of it
        if path[:6].isascii() and path[:6].lower() == "click/" and (url_id := _whole_url_id(path[6:])):
            return url_id
    return ""


def de_date(value: str) -> datetime | None:
    try:
        return datetime.strptime(value.strip(), DE_DATE).replace(tzinfo=SERVER).astimezone(UTC)
    except ValueError:
        return None


def soap_date(value: str | None) -> datetime | None:
    """SOAP object dates: server time without an offset."""
    if not value:
        return None
    return datetime.fromisoformat(value).replace(tzinfo=SERVER).astimezone(UTC)


def boolish(value: str | None) -> bool | None:
    text = (value or "").strip().lower()
    if text in ("", "false", "0"):
        return False
    if text in ("true", "1"):
        return True
    return None


def chicago_day(moment: datetime) -> datetime:
    local = moment.astimezone(CHICAGO)
    return datetime(local.year, local.month, local.day, tzinfo=CHICAGO).astimezone(UTC)


@dataclass(frozen=True)
class Click:
    row_id: str
    job: str
    subscriber: str
    url_id: str
    ack: str
    moment: datetime
    bot: bool


def classify(row: dict[str, str], skip_job_ids: set[str]) -> tuple[str, Click | None]:
    """``("click", click)``, ``("skip", None)`` (processed, no dead letter), ``("nolink", None)``
    (dead letter and processed) or ``("bad", None)`` (dead letter, stays unprocessed)."""
    row_id = (row.get("ID") or "").strip()
    job = (row.get("JobID") or "").strip()
    subscriber = (row.get("SubscriberID") or "").strip()
    if not row_id or not re.fullmatch(r"[0-9]+", job):
        return "bad", None
    if job in skip_job_ids:
        return "skip", None
    moment = de_date(row.get("EventDate") or "")
    bot = boolish(row.get("IsBot_v3"))
    if not re.fullmatch(r"[0-9]+", subscriber) or moment is None or bot is None:
        return "bad", None
    content = row.get("LinkContent") or ""
    parts = link_parts(content) if len(content) <= MAX_LINK else None
    if parts is None:
        return "nolink", None
    return "click", Click(row_id, job, subscriber, parts[0], parts[1], moment, bot)


def _external(namespace: str, ident: str, created: str | None, modified: str | None) -> dict[str, Any]:
    created_at = soap_date(created)
    return {"namespace": namespace, "identifier": ident, "createdAt": created_at,
            "updatedAt": soap_date(modified) or created_at}


def is_test_send(subject: str) -> bool:
    text = subject.strip().lower()
    return text.startswith("test send") or text.startswith("[test]:")


def category_name(name: str) -> str:
    return "My Emails" if name.strip().lower() == "my emails" else name.strip()


@dataclass
class Expected:
    """Expected documents by collection, keyed by a natural key (see ``natural_key``)."""

    docs: dict[str, dict[Any, dict[str, Any]]] = field(default_factory=lambda: {c: {} for c in COLLECTIONS})
    # by tenant: row IDs that must end Processed / stay unprocessed
    processed: dict[str, set[str]] = field(default_factory=dict)
    unprocessed: dict[str, set[str]] = field(default_factory=dict)
    # (tenant, row ID) -> dead letters: one per distinct DE row (primary key), so twins of one ID count twice
    dead_ingest: Counter[tuple[str, str]] = field(default_factory=Counter)
    dead_sends: set[str] = field(default_factory=set)  # send entities
    sending: set[str] = field(default_factory=set)  # entities of sends still Sending (sentDate = retrieval)
    entity_counts: dict[str, int] = field(default_factory=dict)  # distinct entities by kind
    kinds: dict[str, int] = field(default_factory=dict)  # row classification counts


def natural_key(collection: str, doc: dict[str, Any]) -> Any:
    """The key a document is matched on (its expected and actual forms share it, refs as ``Ref``)."""
    if collection == "event-email-clicks":
        return (doc["day"], doc["job"], doc["url"], doc["usr"])
    if collection == "email-send-urls":
        return (doc["sendId"], doc["urlId"])
    if collection == "processed-events":
        return doc["guid"]
    return doc["entity"]


def expected_documents(dataset: dict[str, Any]) -> Expected:
    out = Expected()
    ack_urls: dict[str, list[ObjectId]] = {}
    for doc in dataset["url_acknowledgments"]:
        ack_urls.setdefault(doc["shortId"], []).extend(ObjectId(u) for u in doc["urlIds"])
    counts = {"send": 0, "subscriber": 0, "email": 0, "category": 0}
    for unit in dataset["units"]:
        _unit(unit, ack_urls, out, counts)
    out.entity_counts = counts
    return out


def _unit(unit: dict[str, Any], ack_urls: dict[str, list[ObjectId]], out: Expected, counts: dict[str, int]) -> None:
    tenant = unit["tenant"]
    skip = {str(j) for j in unit.get("skip_job_ids", [])}
    rejected = {str(r) for r in unit.get("reject_row_ids", [])}
    sends = {s["ID"]: s for s in unit["sends"]}
    subscribers = {s["ID"]: s for s in unit["subscribers"]}
    emails = {e["ID"]: e for e in unit["emails"]}
    folders = {f["ID"]: f for f in unit["folders"]}

    clicks: list[Click] = []
    status_by_id: dict[str, str] = {}
    de_rows: set[tuple[str, ...]] = set()
    for row in unit["rows"]:
        row_id = (row.get("ID") or "").strip()
        primary_key = tuple(str(row.get(name, "")) for name in PRIMARY_KEY)
        if primary_key in de_rows:  # the same DE row read twice
            continue
        de_rows.add(primary_key)
        status, click = classify(row, skip)
        if status in ("bad", "nolink"):
            out.dead_ingest[tenant, row_id] += 1
        if row_id in status_by_id:  # a row ID delivered twice counts once in the clicks
            continue
        status_by_id[row_id] = status
        out.kinds[status] = out.kinds.get(status, 0) + 1
        if click:
            clicks.append(click)
    processed = out.processed.setdefault(tenant, set())
    unprocessed = out.unprocessed.setdefault(tenant, set())
    for row_id, status in status_by_id.items():
        if status == "bad" or row_id in rejected:
            unprocessed.add(row_id)
        else:
            processed.add(row_id)
        if status != "bad" and row_id in rejected:
            out.docs["processed-events"][row_id] = {"guid": row_id}

    # clicks
    by_doc: dict[tuple[Any, ...], dict[str, Any]] = {}
    for c in clicks:
        job = Ref(ent(tenant, "send", c.job), missing=c.job not in sends)
        key = (chicago_day(c.moment), job, ObjectId(c.url_id), Ref(ent(tenant, "subscriber", c.subscriber)))
        doc = by_doc.setdefault(key, {"day": key[0], "job": key[1], "url": key[2], "usr": key[3],
                                      "last": c.moment, "guids": set(), "bots": set(), "n": 0})
        doc["last"] = max(doc["last"], c.moment)
        doc["bots" if c.bot else "guids"].add(c.row_id)
    for key, doc in by_doc.items():
        doc["guids"] = sorted(doc["guids"])
        if doc["bots"]:
            doc["bots"] = sorted(doc["bots"])
        else:
            del doc["bots"]
        out.docs["event-email-clicks"][key] = doc

    # subscribers → identities
    for sub_id in sorted({c.subscriber for c in clicks}):
        sub = subscribers[sub_id]
        email = sub["EmailAddress"].strip().lower()
        doc: dict[str, Any] = {
            "entity": ent(tenant, "subscriber", sub_id),
            "externalSource": _external("FuelSOAP:Subscriber", sub_id, sub.get("CreatedDate"), sub.get("ModifiedDate")),
            "emailAddress": email, "emailDomain": email.partition("@")[2],
            "inactive": False, "inactiveCustomerIds": [], "inactiveCampaignIds": [], "inactiveLineItemIds": [],
        }
        attrs = sub.get("Attributes") or {}
        filled = 0
        for name, target in ATTRIBUTE_FIELDS.items():
            if value := (attrs.get(name) or "").strip():
                doc[target] = value
                filled += 1
        nested = {name: (attrs.get(name) or "").strip() for name in NESTED_ATTRIBUTES}
        nested = {name: value for name, value in nested.items() if value}
        if nested:
            doc["attributes"] = nested
            filled += len(nested)
        doc["fieldCount"] = 1 + filled
        out.docs["identities"][doc["entity"]] = doc
        counts["subscriber"] += 1

    # sends referenced by valid clicks; unknown ones are dead-lettered
    jobs = {c.job for c in clicks}
    for job in sorted(jobs - set(sends)):
        out.dead_sends.add(ent(tenant, "send", job))
    fetched = sorted(jobs & set(sends))
    acks_by_send: dict[str, set[str]] = {}
    for c in clicks:
        acks_by_send.setdefault(c.job, set()).add(c.ack)
    seen_emails = sorted({sends[j]["Email.ID"] for j in fetched})
    holding = {emails[e]["CategoryID"] for e in seen_emails}
    reachable: set[str] = set()
    for folder_id in holding:
        current: str | None = folder_id
        while current and current != "0" and current not in reachable:
            reachable.add(current)
            current = folders[current].get("ParentFolder.ID")

    for folder_id in sorted(reachable):
        folder = folders[folder_id]
        chain, current = [], folder_id
        while current and current != "0":
            chain.append(category_name(folders[current]["Name"]))
            current = folders[current].get("ParentFolder.ID")
        parent = folder.get("ParentFolder.ID")
        doc = {
            "entity": ent(tenant, "category", folder_id),
            "externalSource": _external("FuelSOAP:DataFolder", folder_id, folder.get("CreatedDate"),
                                        folder.get("ModifiedDate")),
            "name": category_name(folder["Name"]),
            "fullName": " | ".join(reversed(chain)),
            "parentId": Ref(ent(tenant, "category", parent)) if parent and parent != "0" else None,
            "hasDeployments": folder_id in holding,
            "rollupMetrics": False, "isNewsletter": False,
        }
        out.docs["email-categories"][doc["entity"]] = doc
        counts["category"] += 1

    for email_id in seen_emails:
        email = emails[email_id]
        doc = {
            "entity": ent(tenant, "email", email_id),
            "externalSource": _external("FuelSOAP:Email", email_id, email.get("CreatedDate"),
                                        email.get("ModifiedDate")),
            "name": email["Name"], "subject": email["Subject"],
            "categoryId": Ref(ent(tenant, "category", email["CategoryID"])),
            "rollupMetrics": False, "isNewsletter": False,
        }
        out.docs["email-deployments"][doc["entity"]] = doc
        counts["email"] += 1

    for job in fetched:
        send = sends[job]
        send_entity = ent(tenant, "send", job)
        email = emails[send["Email.ID"]]
        sent = soap_date(send.get("SentDate"))
        if sent is None and send["Status"].lower() == "sending":
            out.sending.add(send_entity)
        test = is_test_send(send["Subject"])
        doc = {
            "entity": send_entity,
            "externalSource": _external("FuelSOAP:Send", job, send.get("CreatedDate"), send.get("ModifiedDate")),
            "name": send["EmailName"], "fromEmail": send["FromAddress"], "fromName": send["FromName"],
            "subject": send["Subject"], "url": send["PreviewURL"], "status": send["Status"], "sentDate": sent,
            "metrics": {
                "sent": int(send["NumberSent"]), "delivered": int(send["NumberDelivered"]),
                "uniqueOpens": int(send["UniqueOpens"]), "uniqueClicks": int(send["UniqueClicks"]),
                "unsubscribes": int(send["Unsubscribes"]), "forwards": int(send["ForwardedEmails"]),
                "bounces": int(send["HardBounces"]) + int(send["SoftBounces"]) + int(send["OtherBounces"]),
            },
            "isTestSend": test,
            "deploymentId": Ref(ent(tenant, "email", email["ID"])),
            "rollupMetrics": False, "isNewsletter": False,
        }
        out.docs["email-sends"][send_entity] = doc
        counts["send"] += 1
        for ack in sorted(acks_by_send[job]):
            for url in ack_urls.get(ack, []):
                url_doc = {
                    "sendId": Ref(send_entity), "urlId": url, "sentDate": sent,
                    "deploymentId": Ref(ent(tenant, "email", email["ID"])),
                    "categoryId": Ref(ent(tenant, "category", email["CategoryID"])), "isTestSend": test,
                }
                out.docs["email-send-urls"][natural_key("email-send-urls", url_doc)] = url_doc


def row_kinds_present(unit: dict[str, Any]) -> dict[str, int]:
    """How many rows of each generator kind a unit has (the test asserts each kind is present)."""
    return {kind: len(ids) for kind, ids in unit["row_kinds"].items()}
