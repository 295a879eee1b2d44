"""Loaded by a bench worker started with ``bench.run --gc`` (this folder on its ``PYTHONPATH``): every 0.5 s,
appends ``epoch seconds, seconds spent in Python's garbage collector so far`` to the file ``BENCH_GC_PROBE``
names (timed with ``gc.callbacks``)."""

from __future__ import annotations

import gc
import os
import threading
import time

_path = os.environ.get("BENCH_GC_PROBE")
_spent = 0.0
_started = 0.0


def _timer(phase: str, info: dict[str, int]) -> None:
    global _spent, _started
    if phase == "start":
        _started = time.perf_counter()
    else:
        _spent += time.perf_counter() - _started


def _report(path: str) -> None:
    with open(path, "a") as out:
        while True:
            out.write(f"{time.time():.3f} {_spent:.4f}\n")
            out.flush()
            time.sleep(0.5)


if _path:
    gc.callbacks.append(_timer)
    threading.Thread(target=_report, args=(_path,), daemon=True).start()
