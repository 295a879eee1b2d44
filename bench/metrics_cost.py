"""What a metric call costs on the hot path: the hand-written counters and timers against prometheus_client.

    .venv/bin/python -m bench.metrics_cost [--calls 1000000] [--rounds 3] [--old-rev 019f15c…] [--rows-per-batch 9]

The old side is ``streams/metrics.py`` as it was at ``--old-rev`` (the last commit with the hand-written
registry), read with ``git show`` and loaded as a module of its own at run time, so nothing of it is copied here;
the new side is ``streams.metrics``. Both time the same metrics with the same labels, ``--calls`` times each
per round, alternating old and new for ``--rounds`` rounds; the least time of the rounds is reported, in ns per
call (loop included):

- ``inc``: ``events_ingested.inc(n, tenant=t)`` against ``events_ingested.labels(tenant=t).inc(n)``;
- ``observe``: ``sfmc_calls.observe(0.3, call=…, tenant=…, outcome="ok")`` against
  ``sfmc_calls.labels(call=…, tenant=…, outcome="ok").observe(0.3)`` (0.3 s falls in the fourth bucket);
- ``timed``: the call sites' async helper around a coroutine that returns at once, ``Timer.time`` against
  ``metrics.timed`` (coroutine creation and ``await`` included on both sides).

The pipeline calls a metric about once per batch, not per row: along a click row's way a batch makes about
``INCS_PER_BATCH`` counter increments and ``TIMED_PER_BATCH`` timed calls (see their docstrings), so the cost
per row is the difference per call times those counts, over ``--rows-per-batch`` rows.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import time
import types
from collections.abc import Awaitable, Callable
from pathlib import Path

from streams import metrics

OLD_REV = "019f15c85ad2b025145f9956e93a1b6e08912420"
"""The last commit whose ``streams/metrics.py`` is the hand-written registry."""
INCS_PER_BATCH = 7
"""Counter increments a batch makes on a click row's way: ingest's ``refused_rows_dropped`` and
``events_ingested`` per ``click-rows`` record, the clicks sink's ``mongo_write_ops`` and ``acks_emitted`` per
batch, the acker's ``rows_marked`` and ``key_mismatch_fallbacks`` per batch and tenant, and a resolver's
``entities_fetched`` per fetch."""
TIMED_PER_BATCH = 3
"""Timed calls a batch makes on a click row's way: the clicks sink's ``mongo_writes`` (the guids bulk; the bots
bulk only when there are bots), the acker's rowset ``sfmc_calls`` (per 50 rows) and a resolver's fetch."""
TENANT = "ien"


def old_metrics(rev: str) -> types.ModuleType:
    """``streams/metrics.py`` of commit ``rev``, loaded as the module ``old_metrics``."""
    root = Path(__file__).resolve().parent.parent
    source = subprocess.run(["git", "show", f"{rev}:streams/metrics.py"], cwd=root, capture_output=True, text=True,
                            check=True).stdout
    module = types.ModuleType("old_metrics")
    exec(compile(source, f"{rev[:10]}:streams/metrics.py", "exec"), module.__dict__)
    return module


def per_call(loop: Callable[[int], object], calls: int) -> float:
    """ns per call of ``loop(calls)``."""
    start = time.perf_counter_ns()
    loop(calls)
    return (time.perf_counter_ns() - start) / calls


async def _done() -> None:
    return None


def _await_each(calls: int, timed: Callable[[], Awaitable[None]]) -> None:
    async def run() -> None:
        for _ in range(calls):
            await timed()

    asyncio.run(run())


def loops(old: types.ModuleType) -> dict[str, tuple[Callable[[int], object], Callable[[int], object]]]:
    """Per measure, the old and the new loop, each taking the number of calls."""
    old_counter, new_counter = old.events_ingested, metrics.events_ingested
    old_timer, new_histogram = old.sfmc_calls, metrics.sfmc_calls

    def old_inc(calls: int) -> None:
        for _ in range(calls):
            old_counter.inc(9, tenant=TENANT)

    def new_inc(calls: int) -> None:
        for _ in range(calls):
            new_counter.labels(tenant=TENANT).inc(9)

    def old_observe(calls: int) -> None:
        for _ in range(calls):
            old_timer.observe(0.3, call="send", tenant=TENANT, outcome="ok")

    def new_observe(calls: int) -> None:
        for _ in range(calls):
            new_histogram.labels(call="send", tenant=TENANT, outcome="ok").observe(0.3)

    return {
        "inc": (old_inc, new_inc),
        "observe": (old_observe, new_observe),
        "timed": (lambda calls: _await_each(calls, lambda: old_timer.time(_done(), call="send", tenant=TENANT)),
                  lambda calls: _await_each(calls, lambda: metrics.timed(new_histogram, _done(), call="send",
                                                                         tenant=TENANT))),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=1_000_000, help="calls of each measure per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--old-rev", default=OLD_REV, help="the commit whose streams/metrics.py is the old side")
    parser.add_argument("--rows-per-batch", type=float, default=9.0)
    args = parser.parse_args(argv)
    measures = loops(old_metrics(args.old_rev))
    best: dict[str, list[float]] = {name: [float("inf"), float("inf")] for name in measures}
    for _ in range(args.rounds):
        for name, sides in measures.items():
            for side, loop in enumerate(sides):
                best[name][side] = min(best[name][side], per_call(loop, args.calls))
    print(f"{args.calls:,} calls per measure, least of {args.rounds} rounds, ns per call (loop included)")
    print(f"{'measure':<8} {'old':>9} {'prometheus_client':>18} {'ratio':>6} {'difference':>11}")
    for name, (old_ns, new_ns) in best.items():
        print(f"{name:<8} {old_ns:>9.0f} {new_ns:>18.0f} {new_ns / old_ns:>6.2f} {new_ns - old_ns:>+11.0f}")
    batch_ns = (INCS_PER_BATCH * (best["inc"][1] - best["inc"][0])
                + TIMED_PER_BATCH * (best["timed"][1] - best["timed"][0]))
    print(f"per batch ({INCS_PER_BATCH} inc + {TIMED_PER_BATCH} timed): {batch_ns / 1000:+.2f} µs; per click row at "
          f"{args.rows_per_batch:g} rows a batch: {batch_ns / args.rows_per_batch / 1000:+.3f} µs")


if __name__ == "__main__":
    main()
