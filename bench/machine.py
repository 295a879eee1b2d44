"""CPU time of named processes and of the whole machine, sampled from ``/proc`` in a thread: what the broker, the
Mongo server and the emulator used beside the worker while a run worked (``bench.run``), and how busy the
machine's cores were, to tell whether a live run was bound by the worker or by the machine it shares.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Mapping
from contextlib import suppress
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
MACHINE = "machine"
"""The name under which ``CpuSampler`` keeps the machine's busy CPU seconds (all cores)."""


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system, all threads) process ``pid`` has used so far; raises ``OSError`` once it is
    gone."""
    utime, stime = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[11:13]
    return (int(utime) + int(stime)) / TICKS


def runqueue_wait_seconds(pid: int) -> float:
    """Seconds the threads of process ``pid`` have spent runnable but waiting for a core so far (the kernel's
    ``schedstat``; a thread that has ended no longer counts); raises ``OSError`` once the process is gone.

    A sampling profiler that takes a runnable thread for a busy one (py-spy does) counts this time as well as the
    CPU time, at the places where the thread waited: mostly right after it woke another process (a send to the
    broker, Mongo or the emulator), which then took its core."""
    waited = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with suppress(OSError, IndexError, ValueError):
            waited += int((task / "schedstat").read_text().split()[1])
    return waited / 1e9


def pin(pids: Iterable[int], cores: set[int]) -> None:
    """Let every thread of each process of ``pids`` run only on ``cores`` (the threads they start later inherit
    it); a process or thread that has ended is skipped."""
    for pid in pids:
        with suppress(OSError):
            for task in Path(f"/proc/{pid}/task").iterdir():
                with suppress(OSError):
                    os.sched_setaffinity(int(task.name), cores)


def machine_busy_seconds() -> float:
    """CPU seconds the machine's cores have spent busy so far, summed over the cores (``/proc/stat``: every
    state but idle and iowait)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9])
    return (user + nice + system + irq + softirq + steal) / TICKS


def growth(samples: list[tuple[float, float]], start: float, end: float) -> float:
    """How much a running total grew from ``start`` to ``end`` (epoch seconds), from the ``(epoch seconds,
    total)`` samples nearest each; 0 without samples."""
    def at(moment: float) -> float:
        return min(samples, key=lambda sample: abs(sample[0] - moment))[1] if samples else 0.0
    return at(end) - at(start)


class CpuSampler:
    """Samples every ``interval`` seconds the CPU seconds used by each process of ``pids`` (by name) and the
    machine's busy seconds (``MACHINE``), from construction until ``stop()``; a process that exits keeps its
    last sample."""

    def __init__(self, pids: Mapping[str, int], interval: float = 0.5) -> None:
        self.pids = dict(pids)
        self.samples: dict[str, list[tuple[float, float]]] = {name: [] for name in [*self.pids, MACHINE]}
        self._stop = threading.Event()
        self._sample()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        now = time.time()
        self.samples[MACHINE].append((now, machine_busy_seconds()))
        for name, pid in self.pids.items():
            try:
                self.samples[name].append((now, process_cpu_seconds(pid)))
            except OSError:
                continue

    def _run(self, interval: float) -> None:
        while not self._stop.wait(interval):
            self._sample()

    def between(self, start: float, end: float) -> dict[str, float]:
        """CPU seconds each name (and ``MACHINE``) used from ``start`` to ``end`` (epoch seconds)."""
        return {name: growth(samples, start, end) for name, samples in self.samples.items()}

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def cpu_table(used: Mapping[str, float], seconds: float, rows: int) -> dict[str, dict[str, float]]:
    """``{name: {"cpu_s", "cores", "us_per_row"}}`` of the CPU seconds ``used`` by each name (``MACHINE``
    included) over a window of ``seconds`` in which ``rows`` rows were handled, plus ``other``: the machine's
    busy time that none of the named processes used (the bench process, py-spy, the kernel, others)."""
    named = sum(value for name, value in used.items() if name != MACHINE)
    cells = {**used, "other": max(0.0, used.get(MACHINE, 0.0) - named)}
    return {name: {"cpu_s": value, "cores": value / seconds if seconds else 0.0,
                   "us_per_row": value * 1e6 / max(1, rows)} for name, value in cells.items()}
