"""Issue 6 benchmarks on the local stack (``python -m stack up`` first) and an instrumented SFMC emulator.

    .venv/bin/python -m bench.run --rows 200000 --sends 300 --subscribers 60000 --emails 150 \\
        --categories 40 --runs 3 --soap-latency 150 --rest-latency 80
    .venv/bin/python -m bench.run --quick          # small smoke size, one run

Per run, on a fresh emulator process with the same dataset and knobs (see BENCHMARKS.md):
  limit     the final documents written straight to MongoDB (``bench.limit``)
  live      a real worker process; rows/s from the first poll to the last ack, read-to-ack p50/p99,
            SFMC calls by type, worker peak memory (VmHWM)
  half      (``--half-rate``) a live worker on an emulator that feeds the click log at half the live run's
            rows/s, polling every 2 s: read-to-ack p50/p99 at a rate it keeps up with
  replay    ``python -m streams replay --database X`` of that run's topics; SFMC calls during it
  models    (``--models-path``) the models sink alone over the live run's ``entity-changes`` (one partition, one
            process: ``bench.models_path``): snapshots/s against the live run's snapshots/s
  raw       raw aiokafka consume-and-produce of the same click-rows messages (``bench.raw_kafka``)
  dry       a worker with MongoDB writes counted, not sent (``bench.dry_worker``), SFMC latency 0
  baseline  the original design's algorithm (``bench.baseline``), bounded by --baseline-seconds
Results: a JSON file per invocation under ``bench/results/`` and a summary on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka.admin import AIOKafkaAdminClient
from bson import ObjectId
from pymongo import MongoClient

from sfmc_emulator import Sizes, generate
from stack.control import status as stack_status
from stack.demo import business_units
from stack.legacy import legacy_documents, write_legacy
from streams.marketing_cloud.values import SERVER_TZ

from .baseline import run_baseline
from .limit import final_operations, write_limit
from .machine import CpuSampler, cpu_table, growth, pin, process_cpu_seconds, runqueue_wait_seconds
from .raw_kafka import run_raw
from .stages import stage_table

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".stack" / "bench"
GC_PROBE = Path(__file__).resolve().parent / "gc_probe"
RESULTS = ROOT / "bench" / "results"
KAFKA = "127.0.0.1:19092"
MONGO = "mongodb://127.0.0.1:27018/?directConnection=true"
FETCH_CALLS = ("soap:Send", "soap:Subscriber", "soap:Email", "soap:DataFolder", "rest:asset-query")
POLL_CALLS = ("soap:DataExtensionObject", "soap:continue")


def stack_pids() -> dict[str, int]:
    """The pids of the stack's broker and Mongo server (``kafka``, ``mongo``) that are running."""
    return {service.name: service.pid for service in stack_status(["kafka", "mongo"]) if service.pid}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmulatorProcess:
    """``python -m bench.emulator`` with the dataset file and latency knobs; ``feed_rate``: click-log rows fed
    per second (all at once if None)."""

    def __init__(self, dataset_path: Path, soap_ms: float, rest_ms: float, name: str,
                 feed_rate: float | None = None) -> None:
        self.log_path = WORK / f"{name}-emulator.log"
        feed = ["--feed-rate", str(feed_rate)] if feed_rate else []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.emulator", "--dataset", str(dataset_path), "--port", str(_free_port()),
             "--soap-latency", str(soap_ms), "--rest-latency", str(rest_ms), *feed],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=self.log_path.open("ab"), text=True)
        assert self.process.stdout is not None
        self.url: str = json.loads(self.process.stdout.readline())["url"]

    def get(self, path: str) -> Any:
        return httpx.get(f"{self.url}{path}", timeout=60).json()

    def post(self, path: str, body: Any = None) -> Any:
        return httpx.post(f"{self.url}{path}", json=body, timeout=60).json()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


class WorkerProcess:
    """A worker subprocess (``module``: streams or bench.dry_worker) with its memory and CPU time sampled every
    0.5 s; ``spy``: where py-spy records its stacks (``bench.stages``) from ``start_spy()`` on."""

    def __init__(self, env: dict[str, str], name: str, module: str = "streams", profile: Path | None = None,
                 spy: Path | None = None, gc_log: Path | None = None) -> None:
        self.log_path = WORK / f"{name}-worker.log"
        self.gc_log = gc_log
        if gc_log is not None:  # bench/gc_probe: the worker notes the time its garbage collector took
            env = {**env, "BENCH_GC_PROBE": str(gc_log),
                   "PYTHONPATH": os.pathsep.join(filter(None, [str(GC_PROBE), env.get("PYTHONPATH")]))}
        command = [sys.executable, "-m", module, "worker", "-l", "warn"]
        if profile is not None:
            command = [sys.executable, "-m", "pyinstrument", "-r", "text", "--show-all", "-o", str(profile),
                       "-m", module, "worker", "-l", "warn"]
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=self.log_path.open("ab"),
                                        stderr=subprocess.STDOUT)
        self.peak_kb = 0
        self.cpu_seconds = 0.0
        self.cpu_samples: list[tuple[float, float]] = []
        """(epoch seconds, CPU seconds used so far), every 0.5 s."""
        self.wait_samples: list[tuple[float, float]] = []
        """(epoch seconds, seconds its threads waited runnable for a core so far), every 0.5 s."""
        self.rss_samples: list[tuple[float, int]] = []
        self.spy_path, self.spy_log = spy, WORK / f"{name}-py-spy.log"
        self.spy: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        status = Path(f"/proc/{self.process.pid}/status")
        while not self._stop.wait(0.5):
            try:
                fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
                self.cpu_seconds = process_cpu_seconds(self.process.pid)
                waited = runqueue_wait_seconds(self.process.pid)
            except OSError:
                return
            self.cpu_samples.append((time.time(), self.cpu_seconds))
            self.wait_samples.append((time.time(), waited))
            self.peak_kb = max(self.peak_kb, int(fields.get("VmHWM", "0 kB").split()[0]))
            self.rss_samples.append((time.time(), int(fields.get("VmRSS", "0 kB").split()[0])))

    def cpu_between(self, start: float, end: float) -> float:
        """CPU seconds the worker used from ``start`` to ``end`` (epoch seconds), from the nearest samples."""
        return growth(self.cpu_samples, start, end)

    def wait_between(self, start: float, end: float) -> float:
        """Seconds the worker's threads waited runnable for a core from ``start`` to ``end`` (epoch seconds)."""
        return growth(self.wait_samples, start, end)

    def start_spy(self) -> None:
        """Start py-spy on the worker (once; only with ``spy``): the samples then cover what the worker does from
        now on, not its start-up (imports, opening the table stores, recovery)."""
        if self.spy_path is not None and self.spy is None:
            self.spy = subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(self.process.pid), "--rate",
                 "200", "--format", "raw", "--nonblocking", "--output", str(self.spy_path)],
                stdout=subprocess.DEVNULL, stderr=self.spy_log.open("ab"))

    def gc_between(self, start: float, end: float) -> float | None:
        """Seconds the worker's garbage collector took from ``start`` to ``end`` (epoch seconds; nearest notes),
        or None without ``gc_log``."""
        if self.gc_log is None or not self.gc_log.exists():
            return None
        notes = [(float(at), float(spent)) for at, spent in
                 (line.split() for line in self.gc_log.read_text().splitlines() if line.strip())]
        return growth(notes, start, end)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop_spy(self) -> None:
        """Stop py-spy, if it runs: its samples end here (it writes them on SIGINT)."""
        if self.spy is not None and self.spy.poll() is None:
            self.spy.send_signal(signal.SIGINT)
            self.spy.wait(60)

    def stop(self) -> None:
        self.stop_spy()
        self._stop.set()
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(90)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def worker_env(dataset: dict[str, Any], emulator_url: str, database: str, prefix: str, poll_interval: float,
               data_dir: Path, store: str | None = None, settings: Mapping[str, str] | None = None) -> dict[str, str]:
    """A bench worker's environment; ``store``: its ``LEADS_TABLE_STORE`` (the setting's default if None);
    ``settings``: more ``LEADS_*`` variables (``--setting``)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LEADS_")}
    if store is not None:
        env["LEADS_TABLE_STORE"] = store
    env.update(settings or {})
    env.update({
        "LEADS_BUSINESS_UNITS": json.dumps(business_units(dataset, emulator_url)),
        "LEADS_BROKER": f"kafka://{KAFKA}", "LEADS_MONGO_URL": MONGO, "LEADS_MONGO_DATABASE": database,
        "LEADS_APP_ID": f"bench-{prefix}", "LEADS_TOPIC_PREFIX": f"{prefix}.",
        "LEADS_POLL_INTERVAL": str(poll_interval), "LEADS_LOOKBACK_SECONDS": str(20 * 365 * 24 * 3600),
        "LEADS_DATA_DIR": str(data_dir), "LEADS_WEB_PORT": str(_free_port()),
    })
    return env


def seed_acks(dataset: dict[str, Any], database: str) -> None:
    client: MongoClient = MongoClient(MONGO)
    client.drop_database(database)
    client[database]["url-acknowledgments"].insert_many([
        {"shortId": a["shortId"], "urlIds": [ObjectId(u) for u in a["urlIds"]]}
        for a in dataset["url_acknowledgments"]])
    client.close()


def drive_worker(emulator: EmulatorProcess, worker: WorkerProcess, expected: int, timeout: float) -> dict[str, Any]:
    """Wait until ``expected`` rows are marked (or nothing moves for 30 s, or ``timeout``); the marks."""
    started, last, moved = time.monotonic(), -1, time.monotonic()
    while time.monotonic() - started < timeout:
        if not worker.alive():
            raise RuntimeError(f"worker exited with {worker.process.returncode}; see {worker.log_path}")
        marks = emulator.get("_bench/marks")
        if marks["first_poll"]:  # the window whose CPU is divided by stage starts
            worker.start_spy()
        if marks["rows_marked"] != last:
            last, moved = marks["rows_marked"], time.monotonic()
        if marks["rows_marked"] >= expected or (last > 0 and time.monotonic() - moved > 30):
            break
        time.sleep(1 if marks["first_poll"] else 0.2)
    marks = emulator.get("_bench/marks")
    marks["timed_out"] = time.monotonic() - started >= timeout
    if marks["first_poll"] and marks["last_mark"]:
        marks["seconds"] = marks["last_mark"] - marks["first_poll"]
        marks["rows_per_s"] = marks["rows_marked"] / marks["seconds"]
    return marks


def calls_summary(counts: dict[str, int], rows: int, entities: int, in_batch: int) -> dict[str, Any]:
    fetch = sum(counts.get(k, 0) for k in FETCH_CALLS)
    polls = sum(counts.get(k, 0) for k in POLL_CALLS)
    bound = 1.1 * entities / in_batch + polls
    return {"by_type": counts, "per_10k_rows": {k: v * 10000 / rows for k, v in counts.items()},
            "fetch_calls": fetch, "poll_calls": polls, "rowset_calls": counts.get("rest:rowset", 0),
            "all_calls": sum(v for k, v in counts.items() if not k.startswith(("returned:", "http"))),
            "goal_bound": bound, "fetch_plus_polls": fetch + polls, "goal_met": fetch + polls <= bound}


def models_path(env: dict[str, str], database: str, live: dict[str, Any], timeout: float) -> dict[str, Any]:
    """``bench.models_path`` over the live run's topics (``env``) into ``database`` (holding only the dataset's
    url-acknowledgments, as the live run's did at its start), and how many times the live run's rate of
    snapshots (snapshots on ``entity-changes`` / live seconds) it writes."""
    done = subprocess.run([sys.executable, "-m", "bench.models_path", "--database", database], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    drop(database)
    if done.returncode:
        raise RuntimeError(f"bench.models_path exited with {done.returncode}: {done.stderr[-1500:]}")
    path = json.loads(done.stdout.strip().splitlines()[-1])
    live_rate = path["snapshots"] / live["seconds"]
    return {**path, "live_snapshots_per_s": live_rate, "over_live": path["snapshots_per_s"] / live_rate}


def drop(database: str) -> None:
    client: MongoClient = MongoClient(MONGO)
    client.drop_database(database)
    client.close()


async def delete_topics(prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix) or t.startswith(f"bench-{prefix}")]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


def one_run(args: argparse.Namespace, index: int, dataset: dict[str, Any], dataset_path: Path,
            final: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    result: dict[str, Any] = {"run": index}
    rows = sum(len(u["rows"]) for u in dataset["units"])
    tag = f"b{uuid.uuid4().hex[:8]}"
    emulator = EmulatorProcess(dataset_path, 0, 0, f"{tag}-live")
    try:
        if final is None:
            log("computing the final documents with the project's builders")
            final = asyncio.run(final_operations(dataset, emulator.url))
        reject = {r for u in dataset["units"] for r in u.get("reject_row_ids", [])}
        expected = final["acked_rows"] - len(reject)
        entities = sum(final["entities"].values())
        result["entities"] = final["entities"]
        log(f"run {index}: limit (unordered bulk upserts of {sum(map(len, final['ops'].values()))} operations)")
        sampler = CpuSampler(stack_pids())
        try:
            limit = write_limit(MONGO, f"bench_limit_{tag}", final["ops"])
        finally:
            sampler.stop()
        limit["rows_per_s"] = final["acked_rows"] / limit["seconds"]
        limit["cpu_by_process"] = cpu_table(sampler.between(limit["started"], limit["started"] + limit["seconds"]),
                                            limit["seconds"], final["acked_rows"])
        result["limit"] = limit
        emulator.post("_emulator/config", {"latency_ms": {"soap": args.soap_latency, "rest": args.rest_latency}})
        emulator.post("_emulator/reset-counts")
        database = f"bench_live_{tag}"
        seed_acks(dataset, database)
        env = worker_env(dataset, emulator.url, database, tag, args.poll_interval, WORK / f"{tag}-data", args.store,
                         args.setting)
        log(f"run {index}: live worker ({rows} rows, {expected} to be marked)")
        last = index == args.runs
        profile = WORK / f"{tag}-profile.txt" if args.profile and last else None
        spy = WORK / f"{tag}-py-spy.txt" if args.stages and last else None
        gc_log = WORK / f"{tag}-gc.txt" if args.gc and last else None
        live = run_live(emulator, WorkerProcess(env, f"{tag}-live", profile=profile, spy=spy, gc_log=gc_log),
                        expected, args.timeout, pin_worker=args.pin_worker,
                        documents=(database, limit["documents"]))
        if gc_log is not None:
            log(f"worker garbage collection: {live.get('window_gc_s', 0):.2f} s of {live['window_cpu_s']:.2f} s CPU "
                "from the first poll to the last mark")
        if "models_settled_s" in live:
            settled = live["models_settled_s"]
            log(f"every document written {settled:.1f} s after the last mark" if settled is not None
                else "the documents were not all written within 60 s of the last mark")
        if cells := live.get("cpu_by_process"):
            used = ", ".join(f"{name} {cell['cores']:.2f}" for name, cell in cells.items())
            log(f"live window CPU, cores used: {used} (of {os.cpu_count()})")
        if spy is not None:
            live["stages"] = stage_table(spy, live["window_cpu_s"], live.get("rows_marked", 0))
            log("worker CPU µs per row by stage: " + ", ".join(
                f"{name} {cell['us_per_row']:.0f}" for name, cell in live["stages"].items()))
            log(f"the worker waited {live['window_wait_s']:.2f} s runnable for a core beside its "
                f"{live['window_cpu_s']:.2f} s of CPU; py-spy's samples hold both")
        result["live"] = live
        if profile is not None:
            result["profile"] = str(profile)
        counts = emulator.get("_emulator/counts")["total"]
        result["calls"] = calls_summary(counts, rows, entities, args.in_batch)
        if args.models_path:
            log(f"run {index}: the models sink alone over the live run's entity-changes")
            models_db = f"bench_models_{tag}"
            seed_acks(dataset, models_db)
            result["models_path"] = models_path(env, models_db, live, args.timeout)
        if not args.skip_replay:
            before = emulator.get("_emulator/counts")["total"]
            replay_db = f"bench_replay_{tag}"
            seed_acks(dataset, replay_db)
            log(f"run {index}: replay")
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "streams", "replay", "--database", replay_db], cwd=ROOT,
                                  env=env, capture_output=True, text=True, timeout=args.timeout)
            seconds = time.perf_counter() - start
            after = emulator.get("_emulator/counts")["total"]
            client: MongoClient = MongoClient(MONGO)
            docs = {name: (client[database][name].count_documents({}), client[replay_db][name].count_documents({}))
                    for name in ("event-email-clicks", "identities", "email-sends", "email-deployments",
                                 "email-categories", "email-send-urls")}
            client.close()
            result["replay"] = {"seconds": seconds, "returncode": done.returncode,
                                "sfmc_calls": {k: after.get(k, 0) - before.get(k, 0) for k in after
                                               if after.get(k, 0) != before.get(k, 0)},
                                "documents_live_vs_replay": docs,
                                "rows_per_s": live.get("rows_marked", 0) / seconds}
            result["replay"]["output"] = (done.stdout[-1500:], done.stderr[-1500:])
            drop(replay_db)
        drop(database)
    finally:
        emulator.stop()
    if args.legacy > 0:
        log(f"run {index}: live worker on a legacy database (share {args.legacy:g})")
        result["live_legacy"] = legacy_live(args, dataset, dataset_path, expected, tag)
    if args.half_rate and result["live"].get("rows_per_s"):
        rate = result["live"]["rows_per_s"] / 2
        log(f"run {index}: live worker fed at half its rate ({rate:.0f} rows/s, polls every {HALF_RATE_POLL:g} s)")
        result["half_rate"] = {**half_rate_live(args, dataset, dataset_path, expected, tag, rate), "feed_rate": rate}
    log(f"run {index}: raw aiokafka")
    result["raw"] = asyncio.run(run_raw(KAFKA, dataset))
    if not args.skip_dry:
        emulator = EmulatorProcess(dataset_path, 0, 0, f"{tag}-dry")
        try:
            database = f"bench_dry_{tag}"
            seed_acks(dataset, database)
            env = worker_env(dataset, emulator.url, database, f"{tag}d", args.poll_interval, WORK / f"{tag}d-data",
                             args.store, args.setting)
            log(f"run {index}: dry worker (Mongo writes counted, SFMC latency 0)")
            result["dry"] = run_live(emulator, WorkerProcess(env, f"{tag}-dry", module="bench.dry_worker"),
                                     expected, args.timeout)
            drop(database)
        finally:
            emulator.stop()
    if args.baseline_seconds > 0:
        emulator = EmulatorProcess(dataset_path, args.soap_latency, args.rest_latency, f"{tag}-base")
        try:
            log(f"run {index}: baseline for {args.baseline_seconds:g} s")
            base = asyncio.run(run_baseline(dataset, emulator.url, MONGO, f"bench_base_{tag}", args.baseline_seconds))
            counts = emulator.get("_emulator/counts")["total"]
            base["calls"] = {k: v for k, v in counts.items() if not k.startswith(("returned:", "http"))}
            base["calls_per_10k_rows"] = sum(base["calls"].values()) * 10000 / max(1, base["rows"])
            result["baseline"] = base
        finally:
            emulator.stop()
    if not args.keep_topics:
        asyncio.run(delete_topics(tag))
    result["topic_prefix"] = tag
    return result, final


def wait_for_documents(database: str, documents: Mapping[str, int], since: float, timeout: float) -> float | None:
    """Seconds from ``since`` (epoch seconds) until ``database`` holds at least ``documents`` (collection → count),
    or None when it does not within ``timeout`` seconds. The models follow the marks: a click is acked without
    waiting for its send and subscriber, which are fetched by windows (``LEADS_FETCH_WINDOW``)."""
    client: MongoClient = MongoClient(MONGO)
    try:
        deadline = time.monotonic() + timeout
        while any(client[database][name].count_documents({}) < count for name, count in documents.items()):
            if time.monotonic() > deadline:
                return None
            time.sleep(0.5)
        return time.time() - since
    finally:
        client.close()


def run_live(emulator: EmulatorProcess, worker: WorkerProcess, expected: int, timeout: float,
             pin_worker: bool = False, documents: tuple[str, Mapping[str, int]] | None = None) -> dict[str, Any]:
    """Drive ``worker`` until ``expected`` rows are marked, then stop it; its marks, peak memory and CPU time:
    ``worker_cpu_s`` over its whole life (start-up included), ``window_cpu_s`` from the first poll to the last
    mark (the pipeline at work; per row: ``window_cpu_us_per_row``), ``window_wait_s`` the seconds it waited
    runnable for a core in that window (``bench.machine.runqueue_wait_seconds``); ``cpu_by_process``: over that
    window, the CPU of the worker, the broker, the Mongo server, the emulator and the machine
    (``bench.machine.cpu_table``). ``pin_worker``: the worker runs on the last core alone, and the broker, the
    Mongo server, the emulator and this process (with the py-spy it starts) on the others, until it stops.
    ``documents``: ``(database, collection → count)``, the worker is stopped only once the database holds them
    (or 60 s after the last mark); ``models_settled_s`` is how long after the last mark that was (None: never)."""
    processes = {**stack_pids(), "emulator": emulator.process.pid}
    others, cores = [*processes.values(), os.getpid()], os.sched_getaffinity(0)
    if pin_worker:
        if len(cores) < 2:
            raise SystemExit("--pin-worker needs at least two cores")
        pin([worker.process.pid], {max(cores)})
        pin(others, cores - {max(cores)})
    sampler = CpuSampler(processes)
    try:
        live = drive_worker(emulator, worker, expected, timeout)
        worker.stop_spy()  # the stages' samples, like the CPU they share out, end with the last mark
        if documents is not None and live.get("last_mark"):
            live["models_settled_s"] = wait_for_documents(*documents, live["last_mark"], 60.0)
    finally:
        peak, cpu = worker.peak_kb, worker.cpu_seconds
        worker.stop()
        sampler.stop()
        if pin_worker:
            pin(others, cores)
    rows = max(1, live.get("rows_marked", 0))
    window = worker.cpu_between(live["first_poll"], live["last_mark"]) if live.get("seconds") else 0.0
    waited = worker.wait_between(live["first_poll"], live["last_mark"]) if live.get("seconds") else 0.0
    measured = {**live, "expected": expected, "worker_vmhwm_mb": peak / 1024, "worker_cpu_s": cpu,
                "worker_cpu_us_per_row": cpu * 1e6 / rows, "window_cpu_s": window,
                "window_cpu_us_per_row": window * 1e6 / rows, "window_wait_s": waited, "pinned": pin_worker}
    if live.get("seconds"):
        measured["cpu_by_process"] = cpu_table({"worker": window, **sampler.between(live["first_poll"],
                                                                                  live["last_mark"])},
                                               live["seconds"], rows)
    if live.get("seconds") and (collector := worker.gc_between(live["first_poll"], live["last_mark"])) is not None:
        measured.update(window_gc_s=collector, window_gc_share=collector / window if window else None)
    return measured


def legacy_live(args: argparse.Namespace, dataset: dict[str, Any], dataset_path: Path, expected: int,
                tag: str) -> dict[str, Any]:
    """The live run on the previous system's database (``stack.legacy``, ``--legacy`` of the first BU's
    entities and click documents), adopted with ``leads-sync adopt`` first (timed apart)."""
    emulator = EmulatorProcess(dataset_path, args.soap_latency, args.rest_latency, f"{tag}-legacy")
    database = f"bench_legacy_{tag}"
    try:
        seed_acks(dataset, database)
        tenant = dataset["units"][0]["tenant"]
        client: MongoClient = MongoClient(MONGO, tz_aware=True)
        documents = write_legacy(client[database], legacy_documents(dataset, tenant, share=args.legacy))
        client.close()
        env = {**worker_env(dataset, emulator.url, database, f"{tag}l", args.poll_interval, WORK / f"{tag}l-data",
                            args.store, args.setting),
               "LEADS_LEGACY_TENANT": tenant}
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "streams", "adopt"], cwd=ROOT, env=env, check=True,
                       capture_output=True, timeout=args.timeout)
        adopt_seconds = time.perf_counter() - start
        live = run_live(emulator, WorkerProcess(env, f"{tag}-legacy"), expected, args.timeout)
        return {**live, "legacy_documents": documents, "adopt_seconds": adopt_seconds}
    finally:
        emulator.stop()
        drop(database)


HALF_RATE_POLL = 2.0
"""Seconds between the half-rate run's polls: its read-to-ack latency is the pipeline's, not a poll period's."""


def half_rate_live(args: argparse.Namespace, dataset: dict[str, Any], dataset_path: Path, expected: int, tag: str,
                   rate: float) -> dict[str, Any]:
    """The live run on an emulator that feeds the click logs at ``rate`` rows per second in all (``--half-rate``)."""
    emulator = EmulatorProcess(dataset_path, args.soap_latency, args.rest_latency, f"{tag}-half",
                               feed_rate=rate / len(dataset["units"]))  # the emulator feeds each BU at its rate
    database = f"bench_half_{tag}"
    try:
        seed_acks(dataset, database)
        env = worker_env(dataset, emulator.url, database, f"{tag}h", HALF_RATE_POLL, WORK / f"{tag}h-data",
                         args.store, args.setting)
        return run_live(emulator, WorkerProcess(env, f"{tag}-half"), expected, args.timeout)
    finally:
        emulator.stop()
        drop(database)


def ratios(result: dict[str, Any]) -> dict[str, float | None]:
    live = result.get("live", {}).get("rows_per_s")

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a and b else None

    calls = result.get("calls", {})
    ours_per_10k = calls.get("all_calls", 0) * 10000 / max(1, result.get("live", {}).get("rows_marked", 1))
    base = result.get("baseline", {})
    return {
        "live_over_limit": ratio(live, result.get("limit", {}).get("rows_per_s")),
        "legacy_live_over_live": ratio(result.get("live_legacy", {}).get("rows_per_s"), live),
        "dry_over_raw": ratio(result.get("dry", {}).get("rows_per_s"), result.get("raw", {}).get("rows_per_s")),
        "live_over_raw": ratio(live, result.get("raw", {}).get("rows_per_s")),
        "baseline_calls_over_ours": ratio(base.get("calls_per_10k_rows"), ours_per_10k),
        "live_over_baseline": ratio(live, base.get("rows_per_s")),
        "replay_over_live_time": ratio(result.get("replay", {}).get("seconds"), result.get("live", {}).get("seconds")),
        "models_path_over_live": result.get("models_path", {}).get("over_live"),
    }


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def write_dataset(args: argparse.Namespace) -> tuple[Sizes, dict[str, Any], Path]:
    """The dataset of the size arguments, generated and written to a file under ``WORK`` (the caller deletes it)."""
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    sizes = Sizes(rows=args.rows, sends=args.sends, subscribers=args.subscribers, emails=args.emails,
                  categories=args.categories, units=args.units, days=args.days)
    dataset = generate(sizes, args.seed, datetime.now(SERVER_TZ).replace(microsecond=0))
    dataset_path = WORK / f"dataset-{uuid.uuid4().hex[:8]}.json"
    dataset_path.write_text(json.dumps(dataset, separators=(",", ":")))
    log(f"dataset {sizes} -> {dataset_path}")
    return sizes, dataset, dataset_path


def _setting(text: str) -> tuple[str, str]:
    """``LEADS_NAME=VALUE`` as ``(name, value)``; raises ``argparse.ArgumentTypeError`` for anything else."""
    name, equals, value = text.partition("=")
    if not equals or not name.startswith("LEADS_"):
        raise argparse.ArgumentTypeError(f"expected LEADS_NAME=VALUE, got {text!r}")
    return name, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in (("rows", 200000), ("sends", 300), ("subscribers", 60000), ("emails", 150),
                          ("categories", 40), ("units", 1), ("days", 3), ("seed", 1), ("runs", 3)):
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--soap-latency", type=float, default=150.0, help="ms per SOAP call")
    parser.add_argument("--rest-latency", type=float, default=80.0, help="ms per REST call")
    parser.add_argument("--poll-interval", type=float, default=30.0, help="worker LEADS_POLL_INTERVAL")
    parser.add_argument("--in-batch", type=int, default=500, help="the worker's LEADS_IN_BATCH_SIZE (for the goal)")
    parser.add_argument("--baseline-seconds", type=float, default=60.0, help="0 skips the baseline")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per worker run")
    parser.add_argument("--skip-dry", action="store_true")
    parser.add_argument("--store", choices=("rocksdb://", "memory://"), default=None,
                        help="the workers' LEADS_TABLE_STORE (default: the setting's default, rocksdb://)")
    parser.add_argument("--legacy", type=float, default=0.0,
                        help="also run live on a legacy database holding this share (0-1) of the first BU's "
                             "entities and click documents (stack.legacy), adopted first")
    parser.add_argument("--skip-replay", action="store_true")
    parser.add_argument("--half-rate", action="store_true",
                        help="then a live worker fed at half the live run's rows/s: its read-to-ack p50/p99")
    parser.add_argument("--keep-topics", action="store_true", help="leave the run's Kafka topics")
    parser.add_argument("--models-path", action="store_true",
                        help="then the models sink alone over the live run's entity-changes: its snapshots/s "
                             "against the live run's (bench.models_path)")
    parser.add_argument("--profile", action="store_true", help="run the last run's live worker under pyinstrument")
    parser.add_argument("--stages", action="store_true",
                        help="sample the last run's live worker with py-spy: CPU µs per row by stage (bench.stages)")
    parser.add_argument("--pin-worker", action="store_true",
                        help="give each run's live worker the last core alone, the broker, Mongo, the emulator and "
                             "py-spy the others: py-spy's samples are then its CPU time, not also its waits for a "
                             "core (bench.machine.runqueue_wait_seconds)")
    parser.add_argument("--gc", action="store_true",
                        help="time the last run's live worker's garbage collection (bench/gc_probe)")
    parser.add_argument("--setting", type=_setting, action="append", default=[], metavar="LEADS_NAME=VALUE",
                        help="a setting for every worker of the run (repeatable)")
    parser.add_argument("--quick", action="store_true", help="5,000 rows, one run, 20 s baseline")
    args = parser.parse_args(argv)
    args.setting = dict(args.setting)
    if args.quick:
        args.rows, args.sends, args.subscribers, args.emails, args.categories = 5000, 40, 1500, 20, 10
        args.runs, args.baseline_seconds, args.poll_interval = 1, 20.0, 5.0
    sizes, dataset, dataset_path = write_dataset(args)
    runs: list[dict[str, Any]] = []
    final = None
    try:
        for index in range(1, args.runs + 1):
            result, final = one_run(args, index, dataset, dataset_path, final)
            result["ratios"] = ratios(result)
            runs.append(result)
            log(f"run {index}: {json.dumps(result['ratios'])}")
    finally:
        dataset_path.unlink(missing_ok=True)
    summary = {
        "live_rows_per_s": median([r["live"].get("rows_per_s") for r in runs]),
        "live_p50_s": median([r["live"]["latency"]["p50"] for r in runs]),
        "live_p99_s": median([r["live"]["latency"]["p99"] for r in runs]),
        "half_rate_p50_s": median([r.get("half_rate", {}).get("latency", {}).get("p50") for r in runs]),
        "half_rate_p99_s": median([r.get("half_rate", {}).get("latency", {}).get("p99") for r in runs]),
        "limit_rows_per_s": median([r["limit"]["rows_per_s"] for r in runs]),
        "raw_rows_per_s": median([r["raw"]["rows_per_s"] for r in runs]),
        "dry_rows_per_s": median([r.get("dry", {}).get("rows_per_s") for r in runs]),
        "baseline_rows_per_s": median([r.get("baseline", {}).get("rows_per_s") for r in runs]),
        "replay_seconds": median([r.get("replay", {}).get("seconds") for r in runs]),
        "live_seconds": median([r["live"].get("seconds") for r in runs]),
        "worker_vmhwm_mb": median([r["live"]["worker_vmhwm_mb"] for r in runs]),
        **{f"median_{k}": median([r["ratios"][k] for r in runs]) for k in runs[0]["ratios"]},
    }
    out = {"args": vars(args), "sizes": vars(sizes) if hasattr(sizes, "__dict__") else str(sizes),
           "machine": {"nproc": os.cpu_count(), "python": sys.version.split()[0]}, "runs": runs, "summary": summary}
    path = RESULTS / f"{time.strftime('%Y%m%d-%H%M%S')}-{args.rows}.json"
    path.write_text(json.dumps(out, indent=1, default=str))
    print(json.dumps(summary, indent=1))
    log(f"results in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
