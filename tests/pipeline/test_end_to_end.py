"""End to end: generated SFMC data through a real worker, real Kafka and a real MongoDB-protocol server.

Expectations come from ``expected.py`` (SPEC 3-6, computed without the pipeline's code). The big run
happens once per module; several tests assert on it.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId
from pymongo import MongoClient

from sfmc_emulator import EmulatorThread, Sizes, generate
from streams.marketing_cloud.values import SERVER_TZ
from tests.pipeline.expected import COLLECTIONS, Expected, Ref, expected_documents, natural_key
from tests.pipeline.harness import (
    Worker,
    emulator_counts,
    emulator_rows,
    read_topic,
    unique_prefix,
    url_acknowledgment_docs,
    wait_until,
    worker_env,
)

pytestmark = pytest.mark.stack

WAIT = 240
MODEL_COLLECTIONS = ("identities", "email-categories", "email-deployments", "email-sends")
REFERENCE_FIELDS = {
    "event-email-clicks": ("job", "usr"),
    "email-sends": ("deploymentId",),
    "email-deployments": ("categoryId",),
    "email-categories": ("parentId",),
    "email-send-urls": ("sendId", "deploymentId", "categoryId"),
}


# --------------------------------------------------------------------------------------------------
# a run


@dataclass
class Run:
    dataset: dict[str, Any]
    expected: Expected
    database: str
    prefix: str
    url: str = ""
    seconds: float = 0.0
    rows: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # by tenant
    docs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # raw, by collection
    counts: dict[str, Any] = field(default_factory=dict)
    workers: list[Worker] = field(default_factory=list)


def make_dataset(sizes: Sizes, seed: int) -> dict[str, Any]:
    return generate(sizes, seed=seed, end=datetime.now(SERVER_TZ).replace(microsecond=0))


def _processed_ids(rows: list[dict[str, str]]) -> set[str]:
    return {row["ID"] for row in rows if row.get("Processed") == "True"}


def drain(run: Run, db: Any, workers: list[Worker], timeout: float = WAIT) -> None:
    """Wait until every row that must be processed is, and the collections stop changing."""
    history: list[tuple[int, ...]] = []
    want = tuple(len(run.expected.docs[c]) for c in COLLECTIONS)

    def done() -> bool:
        for unit in run.dataset["units"]:
            rows = emulator_rows(run.url, unit["client_id"])
            if not run.expected.processed[unit["tenant"]] <= _processed_ids(rows):
                history.clear()
                return False
        history.append(tuple(db[c].count_documents({}) for c in COLLECTIONS))
        if len(history) >= 3 and history[-1] == history[-3] == want:
            return True
        return len(history) >= 10 and len(set(history[-10:])) == 1  # stable, though not as expected

    wait_until(done, timeout, f"the pipeline to drain (counts {history[-1:] or '?'}, expected {want})", workers)


def collect(run: Run, db: Any) -> None:
    run.rows = {u["tenant"]: emulator_rows(run.url, u["client_id"]) for u in run.dataset["units"]}
    run.docs = {c: list(db[c].find({})) for c in COLLECTIONS}
    run.counts = emulator_counts(run.url)


def start_run(dataset: dict[str, Any], tmp: Path, client: MongoClient, kafka_url: str, mongo_url: str,
              database: str | None = None, prefix: str | None = None) -> tuple[Run, EmulatorThread]:
    prefix = prefix or unique_prefix()
    database = database or f"e2e_{prefix}"
    run = Run(dataset, expected_documents(dataset), database, prefix)
    if "url-acknowledgments" not in client[database].list_collection_names():
        client[database]["url-acknowledgments"].insert_many(url_acknowledgment_docs(dataset))
    emulator = EmulatorThread(dataset)
    run.url = emulator.start()
    env = worker_env(dataset, run.url, kafka_url=kafka_url, mongo_url=mongo_url, database=database, prefix=prefix)
    run.workers.append(Worker(env, tmp, name=prefix).start())
    return run, emulator


def stop_workers(run: Run) -> None:
    for worker in run.workers:
        worker.stop()


@pytest.fixture(scope="module")
def client(mongo_url: str) -> Any:
    mongo = MongoClient(mongo_url, tz_aware=True, serverSelectionTimeoutMS=10_000)
    yield mongo
    mongo.close()


@pytest.fixture(scope="module")
def big_dataset() -> dict[str, Any]:
    return make_dataset(Sizes(rows=5000, sends=60, subscribers=1500, emails=25, categories=12, days=3), seed=7)


@pytest.fixture(scope="module")
def clean_run(big_dataset: dict[str, Any], tmp_path_factory: pytest.TempPathFactory, client: MongoClient,
              kafka_url: str, mongo_url: str, kafka_bootstrap: str) -> Any:
    tmp = tmp_path_factory.mktemp("clean")
    run, emulator = start_run(big_dataset, tmp, client, kafka_url, mongo_url)
    started = time.monotonic()
    try:
        drain(run, client[run.database], run.workers)
        run.seconds = time.monotonic() - started
        wait_for_dead_letters(run, kafka_bootstrap)
        collect(run, client[run.database])
    finally:
        stop_workers(run)
        emulator.stop()
    print(f"\nclean run: {run.seconds:.0f}s, emulator counts {run.counts['total']}")
    yield run
    client.drop_database(run.database)


# --------------------------------------------------------------------------------------------------
# comparing documents


def _resolver(run: Run) -> dict[ObjectId, str]:
    ids: dict[ObjectId, str] = {}
    for collection in MODEL_COLLECTIONS:
        for doc in run.docs[collection]:
            ids[doc["_id"]] = doc.get("entity", f"<no entity in {collection} {doc['_id']}>")
    return ids


def _is_datetime(value: Any) -> bool:
    return isinstance(value, datetime)


def normalise(run: Run) -> tuple[dict[str, dict[Any, dict[str, Any]]], list[str]]:
    """Actual documents keyed like the expected ones, references resolved; plus shape problems found."""
    problems: list[str] = []
    ids = _resolver(run)
    row_jobs = {(row["ID"]): (unit["tenant"], row["JobID"]) for unit in run.dataset["units"] for row in unit["rows"]}
    unknown_jobs: dict[ObjectId, set[tuple[str, str]]] = {}
    out: dict[str, dict[Any, dict[str, Any]]] = {}
    for collection in COLLECTIONS:
        docs: dict[Any, dict[str, Any]] = {}
        for raw in run.docs[collection]:
            doc = {k: v for k, v in raw.items() if k != "_id"}
            if not isinstance(raw.get("_id"), ObjectId):
                problems.append(f"{collection}: _id is not an ObjectId: {raw!r}")
            source = doc.get("externalSource")
            if isinstance(source, dict):
                source = dict(source)
                if not _is_datetime(source.pop("lastRetrievedAt", None)):
                    problems.append(f"{collection}: externalSource.lastRetrievedAt is not a datetime: {raw!r}")
                doc["externalSource"] = source
            if collection == "identities" and not _is_datetime(doc.pop("createdAt", None)):
                problems.append(f"identities: createdAt is not a datetime: {raw!r}")
            if collection == "processed-events" and not _is_datetime(doc.pop("date", None)):
                problems.append(f"processed-events: date is not a datetime: {raw!r}")
            for name in REFERENCE_FIELDS.get(collection, ()):
                value = doc.get(name)
                if isinstance(value, ObjectId):
                    doc[name] = Ref(ids[value]) if value in ids else Ref(f"?{value}", missing=True)
            if collection == "event-email-clicks":
                for name in ("guids", "bots"):
                    if name in doc:
                        values = doc[name]
                        if not isinstance(values, list) or len(set(values)) != len(values):
                            problems.append(f"clicks: {name} is not a set-like array: {raw!r}")
                        doc[name] = sorted(values)
                job = doc.get("job")
                if isinstance(job, Ref) and job.missing:
                    oid = ObjectId(job.entity[1:])
                    rows = [*doc.get("guids", []), *doc.get("bots", [])]
                    unknown_jobs.setdefault(oid, set()).update(row_jobs.get(r, ("?", "?")) for r in rows)
            docs[len(docs)] = doc
        out[collection] = docs
    # a click on an unknown send: its job id must stand for exactly one send, consistently
    names: dict[ObjectId, Ref] = {}
    for oid, jobs in unknown_jobs.items():
        if len(jobs) != 1:
            problems.append(f"clicks: job {oid} (no email-sends doc) covers rows of several JobIDs {sorted(jobs)}")
            continue
        tenant, job = next(iter(jobs))
        names[oid] = Ref(f"mc.{tenant}.send*{job}", missing=True)
    if len({ref.entity for ref in names.values()}) != len(names):
        problems.append("clicks: one unknown send has several job ids")
    sending = run.expected.sending
    keyed: dict[str, dict[Any, dict[str, Any]]] = {}
    for collection, docs in out.items():
        keyed[collection] = {}
        for doc in docs.values():
            job = doc.get("job")
            if isinstance(job, Ref) and job.missing and job.entity.startswith("?"):
                doc["job"] = names.get(ObjectId(job.entity[1:]), job)
            send_ref = doc.get("sendId")
            send_entity = doc.get("entity") if collection == "email-sends" else getattr(send_ref, "entity", None)
            if collection in ("email-sends", "email-send-urls") and send_entity in sending:
                if not _is_datetime(doc.get("sentDate")):
                    problems.append(f"{collection}: a Sending send's sentDate is not a datetime: {doc!r}")
                doc["sentDate"] = None
            try:
                key = natural_key(collection, doc)
            except KeyError as exc:
                problems.append(f"{collection}: document without {exc}: {doc!r}")
                continue
            if key in keyed[collection]:
                problems.append(f"{collection}: two documents for {key!r}")
            keyed[collection][key] = doc
    return keyed, problems


def _diff(expected: dict[str, Any], actual: dict[str, Any]) -> dict[str, Any]:
    absent = "<absent>"
    return {k: (expected.get(k, absent), actual.get(k, absent))
            for k in sorted(set(expected) | set(actual), key=str) if expected.get(k, absent) != actual.get(k, absent)}


def compare(collection: str, expected: dict[Any, dict[str, Any]], actual: dict[Any, dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    missing = [k for k in expected if k not in actual]
    extra = [k for k in actual if k not in expected]
    differ = [k for k in expected if k in actual and expected[k] != actual[k]]
    if missing:
        lines.append(f"{collection}: {len(missing)} of {len(expected)} expected documents missing, first: "
                     f"{expected[missing[0]]!r}")
    if extra:
        lines.append(f"{collection}: {len(extra)} unexpected documents, first: {actual[extra[0]]!r}")
    if differ:
        k = differ[0]
        lines.append(f"{collection}: {len(differ)} documents differ; first {k!r}: (expected, actual) by field "
                     f"{_diff(expected[k], actual[k])!r}")
    return lines


def assert_documents(run: Run, collections: tuple[str, ...] = COLLECTIONS) -> None:
    actual, problems = normalise(run)
    for collection in collections:
        problems += compare(collection, run.expected.docs[collection], actual[collection])
    assert not problems, "\n".join(problems)


def dead_letters(run: Run, kafka_bootstrap: str) -> list[dict[str, Any]]:
    records = asyncio.run(read_topic(kafka_bootstrap, f"{run.prefix}.dead-letter"))
    return [record["value"] for record in records]


def dead_letter_keys(letters: list[dict[str, Any]]) -> Counter[tuple[str, str, str]]:
    keys: Counter[tuple[str, str, str]] = Counter()
    for letter in letters:
        source = letter.get("source") or {}
        ident = source.get("ID", "") if letter.get("stage") == "ingest" else source.get("entity", "")
        keys[letter.get("stage", ""), letter.get("tenant", ""), ident] += 1
    return keys


def wait_for_dead_letters(run: Run, kafka_bootstrap: str, workers: list[Worker] | None = None) -> None:
    """Unknown sends are dead-lettered once their retries (1 s, 2 s backoff) are spent, after the drain;
    ``workers``: the running ones (default: all of the run's)."""
    want = set(expected_dead_letter_keys(run.expected))

    def missing() -> set[tuple[str, str, str]]:
        return want - set(dead_letter_keys(dead_letters(run, kafka_bootstrap)))

    wait_until(lambda: not missing(), 60, "the expected dead letters", run.workers if workers is None else workers,
               explain=lambda: f"{len(missing())} of {len(want)} missing, first {sorted(missing())[:5]}")


def expected_dead_letter_keys(expected: Expected) -> Counter[tuple[str, str, str]]:
    keys: Counter[tuple[str, str, str]] = Counter()
    for (tenant, row_id), count in expected.dead_ingest.items():
        keys["ingest", tenant, row_id] += count
    for send in expected.dead_sends:
        keys["resolve-send", send.split(".")[1], send] += 1
    return keys


# --------------------------------------------------------------------------------------------------
# a. one clean run over a big generated dataset


def test_dataset_has_every_kind_of_row(big_dataset: dict[str, Any]) -> None:
    unit = big_dataset["units"][0]
    rows = unit["rows"]
    assert len(rows) >= 5000
    empty = [kind for kind, ids in unit["row_kinds"].items() if not ids]
    assert not empty, f"generator produced no rows of kind {empty}"
    expected = expected_documents(big_dataset)
    assert set(expected.kinds) == {"click", "skip", "nolink", "bad"}, expected.kinds
    assert expected.dead_sends and expected.sending and expected.docs["processed-events"]
    clicks = expected.docs["event-email-clicks"].values()
    assert any("bots" in doc for doc in clicks) and any(not doc["guids"] for doc in clicks)
    assert any(len(doc["guids"]) > 1 for doc in clicks), "no click document counts repeated clicks"
    assert any(len(set(doc["guids"]) | set(doc.get("bots", []))) > 1 for doc in clicks)
    assert any(doc["isTestSend"] for doc in expected.docs["email-sends"].values())
    assert any(doc["name"] == "My Emails" for doc in expected.docs["email-categories"].values())


def test_clean_run_documents(clean_run: Run) -> None:
    assert_documents(clean_run)


@pytest.mark.parametrize("collection", COLLECTIONS)
def test_clean_run_collection(clean_run: Run, collection: str) -> None:
    """Each collection on its own, so one defect does not hide the others."""
    assert_documents(clean_run, (collection,))


def test_clean_run_rows_processed(clean_run: Run) -> None:
    """Every valid and skipped DE row is Processed (both rows of a twice-delivered ID); bad and refused
    (10006) rows are not."""
    tenant = clean_run.dataset["units"][0]["tenant"]
    rows = clean_run.rows[tenant]
    processed, unprocessed = clean_run.expected.processed[tenant], clean_run.expected.unprocessed[tenant]
    not_done = [row for row in rows if row["ID"] in processed and row.get("Processed") != "True"]
    wrongly = [row for row in rows if row["ID"] in unprocessed and row.get("Processed") == "True"]
    unknown = [row for row in rows if row["ID"] not in processed | unprocessed]
    assert not unknown, f"rows the click log gained: {unknown[:3]}"
    assert not wrongly, f"{len(wrongly)} bad/refused rows were marked processed, first {wrongly[0]}"
    twins = set(clean_run.dataset["units"][0]["row_kinds"]["duplicate_id"])
    assert not not_done, (
        f"{len(not_done)} valid/skipped rows were never marked processed "
        f"({sum(r['ID'] in twins for r in not_done)} of them rows whose ID was delivered twice); "
        f"first {not_done[0]}")


def test_clean_run_dead_letters(clean_run: Run, kafka_bootstrap: str) -> None:
    letters = dead_letters(clean_run, kafka_bootstrap)
    blank = [letter for letter in letters if not (letter.get("reason") or "").strip()]
    assert not blank, f"dead letters without a reason: {blank[:3]}"
    assert all(isinstance(letter.get("at"), int | float) for letter in letters)
    ingest = [letter for letter in letters if letter.get("stage") == "ingest"]
    assert all(isinstance(letter.get("source"), dict) and "ID" in letter["source"] for letter in ingest)
    got, want = dead_letter_keys(letters), expected_dead_letter_keys(clean_run.expected)
    missing, extra = want - got, got - want
    assert not missing and not extra, (
        f"dead letters: {sum(missing.values())} missing (first {list(missing)[:3]}), "
        f"{sum(extra.values())} unexpected or repeated (first {list(extra)[:3]})")


def test_clean_run_fetches_each_entity_once(clean_run: Run) -> None:
    """SPEC 6.3: each distinct entity is fetched once (objects returned ≈ distinct entities), in few calls
    (requests batched with IN, not one call per click or per id)."""
    counts = clean_run.counts["total"]
    distinct = clean_run.expected.entity_counts
    print(f"\nemulator counts: {counts}\ndistinct entities: {distinct}")
    calls = {
        "send": counts.get("soap:Send", 0),
        "subscriber": counts.get("soap:Subscriber", 0),
        "email": counts.get("soap:Email", 0) + counts.get("rest:asset-query", 0),
        "category": counts.get("soap:DataFolder", 0),
    }
    returned = {
        "send": counts.get("returned:Send"),
        "subscriber": counts.get("returned:Subscriber"),
        "email": counts.get("returned:asset", 0) + counts.get("returned:Email", 0),
        "category": counts.get("returned:DataFolder"),
    }
    # sends are requested as their clicks arrive, a batch per fetch window; unknown ones are retried
    too_many_calls = {kind: (calls[kind], distinct[kind]) for kind in calls if calls[kind] > distinct[kind] / 2 + 10}
    assert not too_many_calls, f"SFMC calls vs distinct entities (calls, distinct): {too_many_calls}; {counts}"
    refetched = {kind: (returned[kind], distinct[kind]) for kind in returned
                 if returned[kind] is not None and returned[kind] > distinct[kind]}
    assert not refetched, f"entities fetched more than once (returned, distinct): {refetched}; {counts}"


# --------------------------------------------------------------------------------------------------
# b. restarts and re-reads: nothing is counted twice, nothing is lost

PROGRESS_WAIT = 90  # the clean run drains 5,000 rows in well under a minute


def _interrupted_run(run: Run, tmp: Path, client: MongoClient, what: str, kafka_bootstrap: str) -> None:
    """Let the worker process a third of the rows, SIGTERM it, start a new one, and drain."""
    unit = run.dataset["units"][0]
    want = run.expected.processed[unit["tenant"]]
    first = run.workers[0]
    wait_until(lambda: len(_processed_ids(emulator_rows(run.url, unit["client_id"])) & want) >= len(want) // 3,
               PROGRESS_WAIT, f"a third of the rows to be processed ({what})", run.workers)
    first.stop(signal.SIGTERM)
    assert first.process is not None and first.process.returncode == 0, (
        f"worker did not stop cleanly on SIGTERM (exit {first.process and first.process.returncode}):\n"
        f"{first.log()[-3000:]}")
    env = {k: v for k, v in first.env.items() if k not in ("LEADS_DATA_DIR", "LEADS_WEB_PORT")}
    run.workers.append(Worker(env, tmp, name=f"{run.prefix}-2").start())
    drain(run, client[run.database], run.workers[1:])
    # unknown sends are dead-lettered once their retries are spent, which the restart may have delayed
    wait_for_dead_letters(run, kafka_bootstrap, run.workers[1:])
    collect(run, client[run.database])


def test_restart_mid_run(clean_run: Run, big_dataset: dict[str, Any], tmp_path: Path, client: MongoClient,
                         kafka_url: str, mongo_url: str, kafka_bootstrap: str) -> None:
    """A fresh run stopped with SIGTERM part way and resumed by a new worker ends as the clean run did."""
    run, emulator = start_run(big_dataset, tmp_path, client, kafka_url, mongo_url)
    try:
        _interrupted_run(run, tmp_path, client, "before the restart", kafka_bootstrap)
    finally:
        stop_workers(run)
        emulator.stop()
    try:
        assert_documents(run)
        before, _ = normalise(clean_run)
        after, _ = normalise(run)
        assert after["event-email-clicks"] == before["event-email-clicks"]
        tenant = big_dataset["units"][0]["tenant"]
        assert run.expected.processed[tenant] <= _processed_ids(run.rows[tenant])
        got = dead_letter_keys(dead_letters(run, kafka_bootstrap))
        missing = set(expected_dead_letter_keys(run.expected)) - set(got)
        assert not missing, f"{len(missing)} dead letters lost across the restart, first {sorted(missing)[:3]}"
    finally:
        client.drop_database(run.database)


def test_rerun_of_reset_rows_with_restart(clean_run: Run, big_dataset: dict[str, Any],
                                          tmp_path_factory: pytest.TempPathFactory, client: MongoClient,
                                          kafka_url: str, mongo_url: str, kafka_bootstrap: str) -> None:
    """The clean run's rows read again as unprocessed (same database, same topics): they are marked
    processed again and the documents stay exactly those of the clean run (no double counts)."""
    tmp = tmp_path_factory.mktemp("rerun")
    run, emulator = start_run(big_dataset, tmp, client, kafka_url, mongo_url, clean_run.database, clean_run.prefix)
    try:
        _interrupted_run(run, tmp, client, "rows re-read after a reset", kafka_bootstrap)
    finally:
        stop_workers(run)
        emulator.stop()
    assert_documents(run)
    before, _ = normalise(clean_run)
    after, _ = normalise(run)
    for collection in COLLECTIONS:
        assert after[collection] == before[collection], f"{collection} changed by the re-run"


# --------------------------------------------------------------------------------------------------
# c. two business units with overlapping ids


def test_two_business_units(tmp_path: Path, client: MongoClient, kafka_url: str, mongo_url: str,
                            kafka_bootstrap: str) -> None:
    dataset = make_dataset(Sizes(rows=600, sends=12, subscribers=150, emails=6, categories=6, units=2, days=2),
                           seed=11)
    first, second = dataset["units"]
    assert first["tenant"] != second["tenant"]
    assert {s["ID"] for s in first["sends"]} & {s["ID"] for s in second["sends"]}, "ids should overlap"
    run, emulator = start_run(dataset, tmp_path, client, kafka_url, mongo_url)
    want = set(expected_dead_letter_keys(run.expected))
    try:
        drain(run, client[run.database], run.workers)
        wait_for_dead_letters(run, kafka_bootstrap)
        collect(run, client[run.database])
    finally:
        stop_workers(run)
        emulator.stop()
    try:
        for collection in MODEL_COLLECTIONS:
            tenants = Counter(doc["entity"].split(".")[1] for doc in run.docs[collection])
            assert set(tenants) == {first["tenant"], second["tenant"]}, f"{collection}: {tenants}"
        assert_documents(run)
        for unit in dataset["units"]:
            rows = run.rows[unit["tenant"]]
            processed = run.expected.processed[unit["tenant"]]
            assert processed <= _processed_ids(rows), f"{unit['tenant']}: valid rows left unprocessed"
        assert set(dead_letter_keys(dead_letters(run, kafka_bootstrap))) == want
    finally:
        client.drop_database(run.database)


def test_expected_is_consistent() -> None:
    """Sanity of the expectation itself on a small dataset (no services)."""
    dataset = make_dataset(Sizes(rows=300, units=1), seed=3)
    expected = expected_documents(dataset)
    clicks = expected.docs["event-email-clicks"].values()
    assert all(doc["day"].tzinfo is not None and doc["day"].astimezone(UTC).minute == 0 for doc in clicks)
    assert sum(len(d["guids"]) + len(d.get("bots", [])) for d in clicks) == expected.kinds["click"]
