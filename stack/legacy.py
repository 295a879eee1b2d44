"""A database shaped like the previous system's output for an emulator dataset (SPEC 4), for tests, the
demo and the bench:

    python -m stack.legacy --dataset .stack/sample-dataset.json --database leads_demo --share 0.5

For one business unit, a share of the sends its clicks name (with their emails and folder trees) and of
its subscribers get model documents the way the previous system wrote them: a MongoDB-generated ``_id``,
``externalSource.namespace`` + ``identifier``, no ``entity``, references as those ``_id``s, stale field
values, and editor-set ``rollupMetrics`` / ``isNewsletter`` on some folders. A share of the click documents
of those sends and subscribers exists too: ``{day, job, url, usr, n, last, __v}`` with ``n`` earlier
clicks and no ``guids``, under the unique index ``{day, job, url, usr}``.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bson import ObjectId
from pymongo import ASCENDING, MongoClient

from streams.clicks import RowRejected, parse_row
from streams.entity_ids import NAMESPACES
from streams.references import COLLECTIONS

LEGACY_TIME = datetime(2019, 1, 1, tzinfo=UTC)
"""When the previous system last retrieved its documents."""


def _external(kind: str, ident: str | int) -> dict[str, Any]:
    return {"namespace": NAMESPACES[kind], "identifier": ident, "lastRetrievedAt": LEGACY_TIME,
            "createdAt": LEGACY_TIME, "updatedAt": LEGACY_TIME}


def _clicks(unit: dict[str, Any]) -> Iterator[tuple[str, str, datetime, str, datetime]]:
    """``(JobID, SubscriberID, day, urlId, time)`` of each row that becomes a click on a known send."""
    sends = {send["ID"] for send in unit["sends"]}
    skip = frozenset(unit.get("skip_job_ids", []))
    seen: set[str] = set()
    for row in unit["rows"]:
        try:
            event = parse_row(unit["tenant"], row, skip)
        except RowRejected:
            continue
        job = row["JobID"].strip()
        if job in sends and event.row_id not in seen:
            seen.add(event.row_id)
            yield (job, event.subscriber.rpartition("*")[2], datetime.fromtimestamp(event.day, UTC), event.url_id,
                   datetime.fromtimestamp(event.time, UTC))


def legacy_documents(dataset: dict[str, Any], tenant: str, *, share: float = 0.5,
                     seed: int = 1) -> dict[str, list[dict[str, Any]]]:
    """The previous system's documents for ``tenant``'s unit of ``dataset``, by collection (``identities``,
    ``email-categories``, ``email-deployments``, ``email-sends``, ``event-email-clicks``); ``share`` (0-1)
    of the entities and click documents exist. Raises StopIteration for an unknown tenant."""
    rng = random.Random(seed)
    unit = next(unit for unit in dataset["units"] if unit["tenant"] == tenant)
    clicks = list(_clicks(unit))
    sends = {send["ID"]: send for send in unit["sends"]}
    emails = {email["ID"]: email for email in unit["emails"]}
    folders = {folder["ID"]: folder for folder in unit["folders"]}

    def some(ids: set[str]) -> list[str]:
        return sorted(i for i in sorted(ids) if rng.random() < share)

    legacy_sends = some({job for job, *_ in clicks})
    legacy_emails = sorted({sends[job]["Email.ID"] for job in legacy_sends})
    legacy_folders: set[str] = set()
    for email in legacy_emails:
        folder: str | None = emails[email]["CategoryID"]
        while folder and folder != "0":
            legacy_folders.add(folder)
            folder = folders[folder].get("ParentFolder.ID")
    ids = {(kind, ident): ObjectId() for kind, idents in (
        ("send", legacy_sends), ("email", legacy_emails), ("category", sorted(legacy_folders)),
        ("subscriber", some({subscriber for _, subscriber, *_ in clicks})),
    ) for ident in idents}

    def ref(kind: str, ident: str | None) -> ObjectId | None:
        return ids.get((kind, ident or ""))

    docs: dict[str, list[dict[str, Any]]] = {collection: [] for collection in COLLECTIONS.values()}
    for (kind, ident), _id in ids.items():
        doc: dict[str, Any] = {"_id": _id, "externalSource": _external(kind, ident), "name": f"Old {kind} {ident}"}
        if kind == "category":
            flags = {"rollupMetrics": rng.random() < 0.5, "isNewsletter": rng.random() < 0.5}
            doc.update(fullName=doc["name"], parentId=ref("category", folders[ident].get("ParentFolder.ID")),
                       hasDeployments=False, **flags)
        elif kind == "email":
            doc.update(subject="Old", categoryId=ref("category", emails[ident]["CategoryID"]),
                       rollupMetrics=False, isNewsletter=False)
        elif kind == "send":
            doc.update(subject="Old", deploymentId=ref("email", sends[ident]["Email.ID"]),
                       rollupMetrics=False, isNewsletter=False)
        else:  # a subscriber: the previous system stored its numeric id as a number
            del doc["name"]
            doc["externalSource"]["identifier"] = int(ident)
            doc.update(emailAddress=f"old{ident}@example.com", emailDomain="example.com", fieldCount=1,
                       inactive=False, inactiveCustomerIds=[], inactiveCampaignIds=[], inactiveLineItemIds=[],
                       createdAt=LEGACY_TIME)
        docs[COLLECTIONS[kind]].append(doc)  # type: ignore[index]
    docs["event-email-clicks"] = _click_documents(clicks, ref, rng, share)
    return docs


def _click_documents(clicks: list[tuple[str, str, datetime, str, datetime]], ref: Any, rng: random.Random,
                     share: float) -> list[dict[str, Any]]:
    """A share of the click documents whose send and subscriber are legacy; ``last`` is sometimes later
    than the dataset's clicks on it (``$max`` must keep it)."""
    latest: dict[tuple[str, str, datetime, str], datetime] = {}
    for job, subscriber, day, url, moment in clicks:
        if ref("send", job) and ref("subscriber", subscriber):
            key = (job, subscriber, day, url)
            latest[key] = max(latest.get(key, moment), moment)
    return [
        {"_id": ObjectId(), "day": day, "job": ref("send", job), "url": ObjectId(url),
         "usr": ref("subscriber", subscriber), "n": rng.randint(1, 5),
         "last": moment + timedelta(hours=rng.choice((-30, 1))), "__v": 0}
        for (job, subscriber, day, url), moment in sorted(latest.items()) if rng.random() < share
    ]


def write_legacy(db: Any, docs: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    """Insert ``docs`` into ``db`` (a pymongo ``Database``) with the previous system's click index; return
    how many documents each collection got."""
    db["event-email-clicks"].create_index([(name, ASCENDING) for name in ("day", "job", "url", "usr")], unique=True)
    for collection, items in docs.items():
        if items:
            db[collection].insert_many(items)
    return {collection: len(items) for collection, items in docs.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True, help="an emulator dataset (JSON)")
    parser.add_argument("--mongo-url", default="mongodb://127.0.0.1:27018/?directConnection=true")
    parser.add_argument("--database", required=True)
    parser.add_argument("--tenant", help="the BU owning the documents (default: the dataset's first)")
    parser.add_argument("--share", type=float, default=0.5, help="share of entities and click documents (0-1)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    dataset = json.loads(args.dataset.read_text())
    tenant = args.tenant or dataset["units"][0]["tenant"]
    client: MongoClient = MongoClient(args.mongo_url)
    try:
        counts = write_legacy(client[args.database], legacy_documents(dataset, tenant, share=args.share,
                                                                      seed=args.seed))
    finally:
        client.close()
    print(json.dumps({"tenant": tenant, "database": args.database, "documents": counts}))


if __name__ == "__main__":
    main()
