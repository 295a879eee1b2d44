"""``python -m stack.demo [--legacy SHARE]``: the pipeline on the local stack with sample data, end to end.

Starts the stack with a freshly generated sample dataset in the SFMC emulator, runs one worker until
every row it can process is marked processed, prints the worker's ``leads-sync status`` (what its status page
at ``http://127.0.0.1:6066/`` shows) and ``leads-sync summary``, and stops the worker; with ``--serve`` it keeps
the worker and its page running until interrupted.
``--legacy 0.5`` first fills the database with the previous system's documents for half the first BU's
entities and click documents (``stack.legacy``) and runs ``leads-sync adopt``, as on a real leads database.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import httpx
from bson import ObjectId
from pymongo import MongoClient

from . import control
from .config import Config, load
from .legacy import legacy_documents, write_legacy

DATABASE = "leads_demo"
PAGE = "http://127.0.0.1:6066"
"""The demo worker's web port (the settings' default)."""


def unit_settings(unit: dict[str, Any], emulator_url: str) -> dict[str, Any]:
    """Worker settings of one BU of an emulator dataset (an item of ``LEADS_BUSINESS_UNITS``)."""
    return {
        "tenant": unit["tenant"], "mid": unit.get("mid"), "client_id": unit["client_id"],
        "client_secret": unit["client_secret"], "auth_base_url": emulator_url,
        "click_log_key": unit["click_log_key"], "click_log_object_id": unit["click_log_object_id"],
        "skip_job_ids": unit.get("skip_job_ids", []),
    }


def business_units(dataset: dict[str, Any], emulator_url: str) -> list[dict[str, Any]]:
    """``LEADS_BUSINESS_UNITS`` for every BU of an emulator dataset."""
    return [unit_settings(unit, emulator_url) for unit in dataset["units"]]


def _pending(cfg: Config, dataset: dict[str, Any]) -> int:
    """Rows still ``Ready`` in the emulator, across BUs."""
    pending = 0
    for unit in dataset["units"]:
        reply = httpx.get(f"{cfg.emulator_url}_emulator/rows", params={"client_id": unit["client_id"]})
        reply.raise_for_status()
        pending += sum(row["Ready"] == "True" for row in reply.json())
    return pending


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--legacy", type=float, default=0.0, help="share of legacy documents (0: none)")
    parser.add_argument("--serve", action="store_true",
                        help="keep the worker (and its status page) running until interrupted")
    args = parser.parse_args(argv)
    cfg = load()
    dataset_path = cfg.state_dir / "sample-dataset.json"
    dataset_path.unlink(missing_ok=True)  # a fresh dataset whose clicks fall inside the lookback
    control.up(["kafka", "mongo"])
    control.restart_service("emulator")
    dataset = json.loads(dataset_path.read_text())
    mongo: MongoClient = MongoClient(cfg.mongo_url)
    mongo.drop_database(DATABASE)
    mongo[DATABASE]["url-acknowledgments"].insert_many(
        [
            {"shortId": ack["shortId"], "urlIds": [ObjectId(url) for url in ack["urlIds"]]}
            for ack in dataset["url_acknowledgments"]
        ]
    )
    run = f"demo{int(time.time())}"
    env = {
        **os.environ,
        "LEADS_BUSINESS_UNITS": json.dumps(business_units(dataset, cfg.emulator_url)),
        "LEADS_BROKER": cfg.kafka_url,
        "LEADS_MONGO_URL": cfg.mongo_url,
        "LEADS_MONGO_DATABASE": DATABASE,
        "LEADS_APP_ID": run,
        "LEADS_TOPIC_PREFIX": f"{run}.",
        "LEADS_POLL_INTERVAL": "5",
        "LEADS_DATA_DIR": str(cfg.state_dir / run),
    }
    if args.legacy > 0:
        tenant = dataset["units"][0]["tenant"]
        counts = write_legacy(mongo[DATABASE], legacy_documents(dataset, tenant, share=args.legacy))
        env["LEADS_LEGACY_TENANT"] = tenant
        print(f"demo: legacy documents of {tenant}: {counts}; leads-sync adopt", flush=True)
        subprocess.run([sys.executable, "-m", "streams", "adopt"], cwd=cfg.root, env=env, check=True)
    log_path = cfg.log_dir / f"{run}-worker.log"
    rows = sum(len(unit["rows"]) for unit in dataset["units"])
    print(f"demo: {rows} click rows in {len(dataset['units'])} BU(s); worker log {log_path}", flush=True)
    with log_path.open("ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "streams", "worker", "-l", "info"],
            cwd=cfg.root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        started, last, stable_since = time.monotonic(), -1, time.monotonic()
        while time.monotonic() - started < 600 and worker.poll() is None:
            time.sleep(3)
            pending = _pending(cfg, dataset)
            if pending != last:
                print(f"demo: {pending} rows not yet processed ({time.monotonic() - started:.0f} s)", flush=True)
                last, stable_since = pending, time.monotonic()
            elif pending < rows and time.monotonic() - stable_since > 20:
                break  # processing began and what is left is bad input, which stays unprocessed by design
        if worker.poll() is not None:
            print(f"demo: the worker exited with {worker.returncode}; see {log_path}", file=sys.stderr)
            return 1
        status = subprocess.run([sys.executable, "-m", "streams", "status", "--url", PAGE], cwd=cfg.root, env=env,
                                capture_output=True, text=True)
        print(status.stdout or status.stderr)
        if args.serve:
            print(f"demo: the worker's status page is {PAGE}/ ; Ctrl-C stops the worker", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                worker.wait()
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
    summary = subprocess.run(
        [sys.executable, "-m", "streams", "summary"], cwd=cfg.root, env=env, capture_output=True, text=True, check=True
    )
    print(summary.stdout)
    print("demo: the local services keep running; `make down` stops them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
