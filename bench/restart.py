"""Issue 11: restart to "ready" with the tables filled, memory store vs RocksDB store, in one invocation.

    .venv/bin/python -m bench.restart --rows 60000 --subscribers 60000 --sends 60 --emails 30 --categories 10

Per store (``--stores``), on its own emulator process, database, topics and data directory:
  fill      a worker processes the whole dataset (the tables then hold its entities), stopped with SIGTERM
  sigterm   a worker started again on the same data directory: seconds from its start to faust's
            "Worker ready" (recovery done, streams resumed), then it is killed with SIGKILL
  sigkill   a worker started again after that kill: the same measure. The group keeps the killed member
            until its session times out (``--session-timeout``, LEADS_BROKER_SESSION_TIMEOUT of every
            worker here), so that wait is part of this figure
Each restart also reports whether faust read changelogs ("Restoring state from changelog topics") and its
peak memory (VmHWM) until ready. Results: a JSON file under ``bench/results/`` and a table on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from streams.kafka_clients import kafka_consumer, topic_partitions
from streams.settings import load_settings

from .limit import final_operations
from .run import (
    KAFKA,
    RESULTS,
    ROOT,
    WORK,
    EmulatorProcess,
    WorkerProcess,
    delete_topics,
    drive_worker,
    drop,
    log,
    seed_acks,
    worker_env,
    write_dataset,
)

READY = "Worker ready"
RECOVERING = "Restoring state from changelog topics"


async def changelog_records(prefix: str) -> int:
    """Records in the changelog topics of the app ``bench-{prefix}`` (what a full recovery reads)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if t.startswith(f"bench-{prefix}") and t.endswith("-changelog")]
    finally:
        await admin.close()
    settings = load_settings(broker=f"kafka://{KAFKA}")
    partitions = [tp for topic in topics for tp in await topic_partitions(settings, topic)]
    async with kafka_consumer(settings) as consumer:
        starts = await consumer.beginning_offsets(partitions)
        ends = await consumer.end_offsets(partitions)
    return sum(ends[tp] - starts[tp] for tp in partitions)


def vmhwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def restart(env: dict[str, str], name: str, timeout: float) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Start a worker (log level info) and wait for faust's "Worker ready"; the process and its figures."""
    log_path = WORK / f"{name}-worker.log"
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "streams", "worker", "-l", "info"], cwd=ROOT, env=env,
                               stdout=log_path.open("wb"), stderr=subprocess.STDOUT)
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"worker exited with {process.returncode}; see {log_path}")
        text = log_path.read_text(errors="replace")
        if READY in text:
            seconds = time.monotonic() - started
            return process, {"ready_s": round(seconds, 2), "read_changelogs": RECOVERING in text,
                             "vmhwm_mb_at_ready": round(vmhwm_mb(process.pid), 1), "log": str(log_path)}
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"worker not ready after {timeout:g} s; see {log_path}")


def measure(args: argparse.Namespace, store: str, dataset: dict[str, Any], dataset_path: Path,
            expected: int) -> dict[str, Any]:
    tag = f"r{uuid.uuid4().hex[:8]}"
    emulator = EmulatorProcess(dataset_path, 0, 0, f"{tag}-restart")
    database = f"bench_restart_{tag}"
    result: dict[str, Any] = {"store": store, "topic_prefix": tag}
    try:
        seed_acks(dataset, database)
        env = {**worker_env(dataset, emulator.url, database, tag, args.poll_interval, WORK / f"{tag}-data", store),
               "LEADS_BROKER_SESSION_TIMEOUT": str(args.session_timeout)}
        log(f"{store}: fill ({expected} rows to be marked)")
        fill = WorkerProcess(env, f"{tag}-fill")
        try:
            marks = drive_worker(emulator, fill, expected, args.timeout)
        finally:
            peak = fill.peak_kb
            fill.stop()
        result["fill"] = {"rows_marked": marks["rows_marked"], "seconds": marks.get("seconds"),
                          "vmhwm_mb": round(peak / 1024, 1)}
        result["changelog_records"] = asyncio.run(changelog_records(tag))
        counts = emulator.get("_emulator/counts")["total"]
        result["entities_returned"] = {k: v for k, v in counts.items()
                                       if k.startswith("returned:") and k != "returned:DataExtensionObject"}
        log(f"{store}: restart after SIGTERM ({result['changelog_records']} changelog records)")
        worker, result["sigterm"] = restart(env, f"{tag}-sigterm", args.timeout)
        time.sleep(args.settle)
        worker.kill()
        worker.wait()
        log(f"{store}: restart after SIGKILL")
        worker, result["sigkill"] = restart(env, f"{tag}-sigkill", args.timeout)
        time.sleep(args.settle)
        worker.terminate()
        worker.wait(90)
        after = emulator.get("_emulator/counts")["total"]
        result["entities_refetched"] = {k: after.get(k, 0) - v for k, v in result["entities_returned"].items()
                                        if after.get(k, 0) != v}
    finally:
        emulator.stop()
        drop(database)
        if not args.keep_topics:
            asyncio.run(delete_topics(tag))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in (("rows", 60000), ("sends", 60), ("subscribers", 60000), ("emails", 30),
                          ("categories", 10), ("units", 1), ("days", 3), ("seed", 1)):
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--stores", nargs="+", default=["memory://", "rocksdb://"])
    parser.add_argument("--poll-interval", type=float, default=5.0)
    parser.add_argument("--session-timeout", type=float, default=10.0, help="every worker's session timeout (s)")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds a restarted worker runs after ready")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--keep-topics", action="store_true")
    args = parser.parse_args(argv)
    _sizes, dataset, dataset_path = write_dataset(args)
    try:
        emulator = EmulatorProcess(dataset_path, 0, 0, f"restart-final-{uuid.uuid4().hex[:8]}")
        try:
            final = asyncio.run(final_operations(dataset, emulator.url))
        finally:
            emulator.stop()
        reject = {r for u in dataset["units"] for r in u.get("reject_row_ids", [])}
        expected = final["acked_rows"] - len(reject)
        results = [measure(args, store, dataset, dataset_path, expected) for store in args.stores]
    finally:
        dataset_path.unlink(missing_ok=True)
    out = {"args": vars(args), "entities": final["entities"], "results": results}
    path = RESULTS / f"{time.strftime('%Y%m%d-%H%M%S')}-restart-{args.subscribers}.json"
    path.write_text(json.dumps(out, indent=1, default=str))
    print(f"entities {json.dumps(final['entities'])}")
    print(f"{'store':<12} {'changelog records':>17} {'fill VmHWM MB':>13} {'SIGTERM ready s':>15} "
          f"{'SIGKILL ready s':>15} {'read changelogs':>15} {'refetched':>9}")
    for r in results:
        read = f"{r['sigterm']['read_changelogs']}/{r['sigkill']['read_changelogs']}"
        print(f"{r['store']:<12} {r['changelog_records']:>17} {r['fill']['vmhwm_mb']:>13} "
              f"{r['sigterm']['ready_s']:>15} {r['sigkill']['ready_s']:>15} {read:>15} "
              f"{sum(r['entities_refetched'].values()):>9}")
    log(f"results in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
