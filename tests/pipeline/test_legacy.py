"""A database the previous system wrote (SPEC 4): adopted, never duplicated, its click documents counted on.

Two BUs with overlapping ids; the first owns a share of legacy model and click documents
(``stack.legacy``). A real worker refuses the database until ``leads-sync adopt`` ran; then the end state
is the clean run's, with the legacy ``_id``s, ``n`` counters and editor-set flags kept.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId
from pymongo import MongoClient

from sfmc_emulator import EmulatorThread, Sizes
from stack.legacy import legacy_documents, write_legacy
from tests.pipeline.expected import Expected, Ref, ent, expected_documents
from tests.pipeline.harness import ROOT, Worker, unique_prefix, url_acknowledgment_docs, worker_env
from tests.pipeline.test_end_to_end import (
    MODEL_COLLECTIONS,
    Run,
    assert_documents,
    collect,
    drain,
    make_dataset,
    stop_workers,
    wait_for_dead_letters,
)

pytestmark = pytest.mark.stack

KINDS = {"identities": "subscriber", "email-sends": "send", "email-deployments": "email",
         "email-categories": "category"}
FLAGS = ("rollupMetrics", "isNewsletter")


def legacy_entities(legacy: dict[str, list[dict[str, Any]]], tenant: str) -> dict[ObjectId, str]:
    """The entity each legacy model document stands for, by its ``_id``."""
    return {doc["_id"]: ent(tenant, KINDS[collection], str(doc["externalSource"]["identifier"]))
            for collection in MODEL_COLLECTIONS for doc in legacy[collection]}


def expected_with_legacy(dataset: dict[str, Any], legacy: dict[str, list[dict[str, Any]]], tenant: str) -> Expected:
    """The clean run's documents, except what the legacy documents own: editor-set folder flags (copied to
    deployments, then sends), and each legacy click document's ``n``, ``__v`` and a later ``last``."""
    expected = expected_documents(dataset)
    docs = expected.docs
    entities = legacy_entities(legacy, tenant)
    for folder in legacy["email-categories"]:
        docs["email-categories"][entities[folder["_id"]]].update({name: folder[name] for name in FLAGS})
    for deployment in docs["email-deployments"].values():
        deployment.update({name: docs["email-categories"][deployment["categoryId"].entity][name] for name in FLAGS})
    for send in docs["email-sends"].values():
        send.update({name: docs["email-deployments"][send["deploymentId"].entity][name] for name in FLAGS})
    for click in legacy["event-email-clicks"]:
        key = (click["day"], Ref(entities[click["job"]]), click["url"], Ref(entities[click["usr"]]))
        doc = docs["event-email-clicks"][key]
        doc.update(n=click["n"], __v=0, last=max(doc["last"], click["last"]))
    return expected


def leads_sync(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "streams", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=180)


def run_on(db: Any, dataset: dict[str, Any], legacy: dict[str, list[dict[str, Any]]], owner: str, tmp_path: Path,
           *, kafka_url: str, mongo_url: str, kafka_bootstrap: str) -> Run:
    """Write ``legacy`` into ``db``; where it holds model documents, check that a worker refuses the database
    and adopt it for ``owner`` (twice: the second changes nothing); then run a worker until every row is
    processed and return the run with its documents."""
    prefix = unique_prefix()
    write_legacy(db, legacy)
    db["url-acknowledgments"].insert_many(url_acknowledgment_docs(dataset))
    run = Run(dataset, expected_with_legacy(dataset, legacy, owner), db.name, prefix)
    emulator = EmulatorThread(dataset)
    run.url = emulator.start()
    env = worker_env(dataset, run.url, kafka_url=kafka_url, mongo_url=mongo_url, database=db.name, prefix=prefix,
                     LEADS_LEGACY_TENANT=owner)
    try:
        if any(legacy[name] for name in MODEL_COLLECTIONS):
            refused = Worker(env, tmp_path, name="refused").start()
            assert refused.process is not None
            refused.process.wait(120)
            assert refused.process.returncode != 0 and "leads-sync adopt" in refused.log(), refused.log()[-3000:]
            assert db["email-sends"].count_documents({}) == len(legacy["email-sends"]), "a refused worker wrote"

            adopted = leads_sync(env, "adopt", "--batch", "7")
            assert adopted.returncode == 0, adopted.stderr[-3000:]
            counts = json.loads(adopted.stdout.strip().splitlines()[-1])["adopted"]
            assert {name: counts[name] for name in MODEL_COLLECTIONS} == {
                name: {"adopted": len(legacy[name]), "skipped": 0} for name in MODEL_COLLECTIONS}
            again = leads_sync(env, "adopt")
            assert again.returncode == 0, again.stderr[-3000:]
            assert all(count["adopted"] == 0 for count in json.loads(
                again.stdout.strip().splitlines()[-1])["adopted"].values()), "a second adoption changed something"

        run.workers.append(Worker(env, tmp_path, name=prefix).start())
        drain(run, db, run.workers)
        wait_for_dead_letters(run, kafka_bootstrap)
        collect(run, db)
    finally:
        stop_workers(run)
        emulator.stop()
    return run


def assert_adopted(run: Run, legacy: dict[str, list[dict[str, Any]]], owner: str) -> None:
    """The run's documents are the expected ones (every reference resolving to a document), one per
    (namespace, identifier) in a BU; legacy documents kept their ``_id``, got ``owner``'s entity and no
    other BU's; legacy click documents kept ``n`` and received the new clicks."""
    assert_documents(run)
    entities = legacy_entities(legacy, owner)
    for collection in MODEL_COLLECTIONS:
        by_source = [(doc["entity"].split(".")[1], doc["externalSource"]["namespace"],
                      doc["externalSource"]["identifier"]) for doc in run.docs[collection]]
        assert len(by_source) == len(set(by_source)), f"{collection}: a (namespace, identifier) twice in a BU"
        kept = {doc["_id"]: doc["entity"] for doc in run.docs[collection] if doc["_id"] in entities}
        assert kept == {doc["_id"]: entities[doc["_id"]] for doc in legacy[collection]}, (
            f"{collection}: legacy documents lost their _id or got another entity")
        assert not [doc for doc in run.docs[collection] if not doc["entity"].startswith(f"mc.{owner}.")
                    and doc["_id"] in entities], f"{collection}: a second BU's document matched a legacy one"
    clicks = {doc["_id"]: doc for doc in run.docs["event-email-clicks"]}
    for old in legacy["event-email-clicks"]:
        new = clicks[old["_id"]]
        assert new["n"] == old["n"] and (new["guids"] or new.get("bots")), (old, new)


@pytest.fixture
def database(mongo_url: str) -> Iterator[Any]:
    client: MongoClient = MongoClient(mongo_url, tz_aware=True)
    name = f"legacy_{unique_prefix()}"
    yield client[name]
    client.drop_database(name)
    client.close()


def test_adopts_the_previous_systems_documents(database: Any, tmp_path: Path, kafka_url: str, mongo_url: str,
                                               kafka_bootstrap: str) -> None:
    dataset = make_dataset(Sizes(rows=800, sends=12, subscribers=150, emails=6, categories=8, units=2, days=2),
                           seed=11)
    owner, other = (unit["tenant"] for unit in dataset["units"])
    legacy = legacy_documents(dataset, owner, share=0.6, seed=5)
    assert legacy["event-email-clicks"], "no legacy click document for this dataset"
    # an editor set both flags on the legacy folder of a legacy email (the draw varies with today's date)
    emails = {email["ID"]: email for email in dataset["units"][0]["emails"]}
    holding = {emails[str(doc["externalSource"]["identifier"])]["CategoryID"] for doc in legacy["email-deployments"]}
    folder = next(doc for doc in legacy["email-categories"] if doc["externalSource"]["identifier"] in holding)
    folder.update(rollupMetrics=True, isNewsletter=True)
    run = run_on(database, dataset, legacy, owner, tmp_path, kafka_url=kafka_url, mongo_url=mongo_url,
                 kafka_bootstrap=kafka_bootstrap)
    assert_adopted(run, legacy, owner)
    assert any(doc["entity"].startswith(f"mc.{other}.") for doc in run.docs["email-sends"])
    # the folder's flags, copied down to its emails' deployments and their sends
    flagged = {doc["_id"] for doc in run.docs["email-deployments"]
               if doc["categoryId"] == folder["_id"] and doc["rollupMetrics"] and doc["isNewsletter"]}
    assert flagged, "the editor's flags were not copied to the folder's deployments"
    assert any(doc["deploymentId"] in flagged and doc["rollupMetrics"] and doc["isNewsletter"]
               for doc in run.docs["email-sends"]), "the editor's flags were not copied to the sends"


def test_a_legacy_tenant_on_an_empty_database(database: Any, tmp_path: Path, kafka_url: str, mongo_url: str,
                                              kafka_bootstrap: str) -> None:
    """``LEADS_LEGACY_TENANT`` set, nothing to adopt: the documents are the clean run's, unchanged."""
    dataset = make_dataset(Sizes(rows=400, sends=8, subscribers=80, emails=4, categories=6, units=1, days=2), seed=3)
    owner = dataset["units"][0]["tenant"]
    legacy = legacy_documents(dataset, owner, share=0.0)
    assert not any(legacy.values())
    run = run_on(database, dataset, legacy, owner, tmp_path, kafka_url=kafka_url, mongo_url=mongo_url,
                 kafka_bootstrap=kafka_bootstrap)
    assert run.expected.docs == expected_documents(dataset).docs
    assert_documents(run)


ROW = "b7a1c2d3-0000-4000-8000-000000000001"
URL = "5f47e1c107809f52ef34357c"


def issue_dataset() -> dict[str, Any]:
    """One send (607105) of one email (117131) in folder 4002 (under 4000), one subscriber (70000001) and one
    click on 2020-12-31 in Chicago: the case of the issue that asked for adoption."""
    dataset = make_dataset(Sizes(rows=1, sends=1, subscribers=1, emails=1, categories=1, units=1, days=1), seed=1)
    unit = dataset["units"][0]
    unit.update(skip_job_ids=[], reject_row_ids=[], folders=[
        {"ID": "4000", "ParentFolder.ID": "0", "Name": "Newsletters", "ContentType": "email"},
        {"ID": "4002", "ParentFolder.ID": "4000", "Name": "Daily", "ContentType": "email"}])
    unit["emails"] = [{**unit["emails"][0], "ID": "117131", "CategoryID": "4002"}]
    unit["sends"] = [{**unit["sends"][0], "ID": "607105", "Email.ID": "117131"}]
    unit["subscribers"] = [{**unit["subscribers"][0], "ID": "70000001"}]
    unit["rows"] = [{"ID": ROW, "JobID": "607105", "SubscriberID": "70000001", "EventDate": "12/31/2020 9:15:00 AM",
                     "LinkContent": f"https://x.com/p?lt.lidack={URL}~k9", "IsUnique": "True", "ListID": "12",
                     "IsBot_v3": "False"}]
    dataset["url_acknowledgments"] = [{"shortId": "k9", "urlIds": [URL]}]
    return dataset


def test_the_issues_legacy_database(database: Any, tmp_path: Path, kafka_url: str, mongo_url: str,
                                    kafka_bootstrap: str) -> None:
    dataset = issue_dataset()
    owner = dataset["units"][0]["tenant"]
    legacy = legacy_documents(dataset, owner, share=1.0)
    assert [len(legacy[name]) for name in (*MODEL_COLLECTIONS, "event-email-clicks")] == [1, 2, 1, 1, 1]
    folder = next(doc for doc in legacy["email-categories"] if doc["externalSource"]["identifier"] == "4002")
    folder.update(rollupMetrics=True, isNewsletter=True)
    legacy["event-email-clicks"][0]["n"] = 3
    run = run_on(database, dataset, legacy, owner, tmp_path, kafka_url=kafka_url, mongo_url=mongo_url,
                 kafka_bootstrap=kafka_bootstrap)
    assert_adopted(run, legacy, owner)
    ids = {name: {doc["_id"] for doc in run.docs[name]} for name in MODEL_COLLECTIONS}
    assert ids == {name: {doc["_id"] for doc in legacy[name]} for name in MODEL_COLLECTIONS}, "a duplicate"
    [click] = run.docs["event-email-clicks"]
    identity, send = legacy["identities"][0], legacy["email-sends"][0]
    assert (click["_id"], click["job"], click["usr"], click["n"], click["guids"]) == (
        legacy["event-email-clicks"][0]["_id"], send["_id"], identity["_id"], 3, [ROW])
    for collection in ("email-deployments", "email-sends"):
        [doc] = run.docs[collection]
        assert (doc["rollupMetrics"], doc["isNewsletter"]) == (True, True), collection
