"""A database the previous system wrote (SPEC 4): adopted, never duplicated, its click documents counted on.

Two BUs with overlapping ids; the first owns a share of legacy model and click documents
(``stack.legacy``). A real worker refuses the database until ``leads-sync adopt`` ran; then the end state
is the clean run's, with the legacy ``_id``s, ``n`` counters and editor-set flags kept.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId
from pymongo import MongoClient

from stack.legacy import legacy_documents, write_legacy
from streams.marketing_cloud.emulator.generator import Sizes
from streams.marketing_cloud.emulator.server import EmulatorThread
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


def test_adopts_the_previous_systems_documents(tmp_path: Path, kafka_url: str, mongo_url: str,
                                               kafka_bootstrap: str) -> None:
    dataset = make_dataset(Sizes(rows=800, sends=12, subscribers=150, emails=6, categories=8, units=2, days=2),
                           seed=11)
    owner, other = (unit["tenant"] for unit in dataset["units"])
    legacy = legacy_documents(dataset, owner, share=0.6, seed=5)
    # the dataset (and so the legacy documents drawn for it) varies with today's date: make sure an editor
    # set a flag on at least one legacy folder
    legacy["email-categories"][0].update(rollupMetrics=True, isNewsletter=True)
    assert legacy["event-email-clicks"], "no legacy click document for this dataset"
    prefix = unique_prefix()
    client: MongoClient = MongoClient(mongo_url, tz_aware=True)
    db = client[f"legacy_{prefix}"]
    write_legacy(db, legacy)
    db["url-acknowledgments"].insert_many(url_acknowledgment_docs(dataset))
    run = Run(dataset, expected_with_legacy(dataset, legacy, owner), db.name, prefix)
    emulator = EmulatorThread(dataset)
    run.url = emulator.start()
    env = worker_env(dataset, run.url, kafka_url=kafka_url, mongo_url=mongo_url, database=db.name, prefix=prefix,
                     LEADS_LEGACY_TENANT=owner)
    try:
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
        assert all(count["adopted"] == 0 for count in json.loads(again.stdout.strip().splitlines()[-1])["adopted"]
                   .values()), "a second adoption changed something"

        run.workers.append(Worker(env, tmp_path, name=prefix).start())
        drain(run, db, run.workers)
        wait_for_dead_letters(run, kafka_bootstrap)
        collect(run, db)
    finally:
        stop_workers(run)
        emulator.stop()
    try:
        assert_documents(run)
        entities = legacy_entities(legacy, owner)
        for collection in MODEL_COLLECTIONS:
            by_source = [(doc["entity"].split(".")[1], doc["externalSource"]["namespace"],
                          doc["externalSource"]["identifier"]) for doc in run.docs[collection]]
            assert len(by_source) == len(set(by_source)), f"{collection}: a (namespace, identifier) twice in a BU"
            kept = {doc["_id"]: doc["entity"] for doc in run.docs[collection] if doc["_id"] in entities}
            assert kept == {doc["_id"]: entities[doc["_id"]] for doc in legacy[collection]}, (
                f"{collection}: legacy documents lost their _id or got another entity")
            assert not [doc for doc in run.docs[collection] if doc["entity"].startswith(f"mc.{other}.")
                        and doc["_id"] in entities], f"{collection}: a second BU's document matched a legacy one"
        clicks = {doc["_id"]: doc for doc in run.docs["event-email-clicks"]}
        for old in legacy["event-email-clicks"]:
            new = clicks[old["_id"]]
            assert new["n"] == old["n"] and (new["guids"] or new.get("bots")), (old, new)
    finally:
        client.drop_database(db.name)
        client.close()
