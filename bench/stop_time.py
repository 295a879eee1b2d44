"""Seconds from SIGTERM to exit of a busy worker, for each fetch window (``LEADS_FETCH_WINDOW``), alternating:
``python -m bench.stop_time [--windows 1 10] [--trials 3] [--after-rows 3000]`` (the stack up).

Each trial starts a worker on its own emulator process (SOAP 150 ms, REST 80 ms a call), database and topics,
waits until ``--after-rows`` rows are marked (the worker is then still reading, resolving and writing), sends
SIGTERM and times the exit. faust waits at a stop until the records its agents hold are handled, and a
resolver holds its requests for up to a window, so the window bounds part of the stop.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from pathlib import Path
from statistics import median
from typing import Any

from .run import WORK, EmulatorProcess, WorkerProcess, delete_topics, drop, log, seed_acks, worker_env, write_dataset


def stop_seconds(dataset: dict[str, Any], dataset_path: Path, window: str, after_rows: int) -> float:
    """One trial: seconds from SIGTERM to the worker's exit, the window being ``window`` seconds."""
    prefix = f"s{uuid.uuid4().hex[:8]}"
    emulator = EmulatorProcess(dataset_path, 150, 80, prefix)
    try:
        seed_acks(dataset, prefix)
        env = worker_env(dataset, emulator.url, prefix, prefix, 2, WORK / f"{prefix}-data",
                         settings={"LEADS_FETCH_WINDOW": window})
        worker = WorkerProcess(env, prefix)
        started = time.monotonic()
        while emulator.get("_bench/marks")["rows_marked"] < after_rows and time.monotonic() - started < 300:
            time.sleep(0.5)
        stopping = time.monotonic()
        worker.stop()  # SIGTERM, then waits for the exit
        return time.monotonic() - stopping
    finally:
        emulator.stop()
        drop(prefix)
        asyncio.run(delete_topics(prefix))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in (("rows", 40000), ("sends", 120), ("subscribers", 12000), ("emails", 60),
                          ("categories", 20), ("units", 1), ("days", 3), ("seed", 7), ("trials", 3),
                          ("after_rows", 3000)):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=default)
    parser.add_argument("--windows", nargs="+", default=["1", "10"], help="LEADS_FETCH_WINDOW values, seconds")
    args = parser.parse_args(argv)
    _, dataset, dataset_path = write_dataset(args)
    seconds: dict[str, list[float]] = {window: [] for window in args.windows}
    try:
        for _ in range(args.trials):
            for window in args.windows:
                seconds[window].append(stop_seconds(dataset, dataset_path, window, args.after_rows))
                log(f"window {window} s: stopped in {seconds[window][-1]:.2f} s")
    finally:
        dataset_path.unlink()
    for window, values in seconds.items():
        log(f"window {window} s: {', '.join(f'{v:.1f}' for v in values)} s (median {median(values):.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
