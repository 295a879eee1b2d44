import os
import subprocess
import sys
import threading
import time

import pytest

from bench.machine import MACHINE, CpuSampler, cpu_table, growth, pin, runqueue_wait_seconds


def test_growth_takes_the_samples_nearest_each_end() -> None:
    samples = [(10.0, 1.0), (10.5, 1.5), (11.0, 3.0), (11.5, 3.1)]
    assert growth(samples, 10.4, 11.1) == pytest.approx(1.5)
    assert growth([], 1.0, 2.0) == 0.0


def test_the_table_gives_cores_and_cpu_per_row_and_what_no_named_process_used() -> None:
    table = cpu_table({"worker": 2.0, "kafka": 1.0, MACHINE: 3.5}, seconds=2.0, rows=1000)
    assert table["worker"] == {"cpu_s": 2.0, "cores": 1.0, "us_per_row": 2000.0}
    assert table["other"]["cpu_s"] == pytest.approx(0.5)
    assert table[MACHINE]["cores"] == pytest.approx(1.75)


def test_the_sampler_sees_a_process_use_cpu_and_the_machine_at_least_as_much() -> None:
    sampler = CpuSampler({"self": os.getpid()}, interval=0.1)
    start = time.time()
    while time.time() - start < 0.8:  # busy on one core
        pass
    end = time.time()
    time.sleep(0.2)
    sampler.stop()
    used = sampler.between(start, end)
    assert used["self"] > 0.3
    assert used[MACHINE] >= used["self"] - 0.05  # the machine's ticks and the process's are counted apart


def test_pinning_reaches_every_thread_of_a_process_and_threads_started_later() -> None:
    cores = os.sched_getaffinity(0)
    started, stop = threading.Event(), threading.Event()
    affinity: dict[str, set[int]] = {}

    def thread() -> None:
        started.set()
        stop.wait(5)
        affinity["early"] = os.sched_getaffinity(0)

    early = threading.Thread(target=thread)
    early.start()
    started.wait(5)
    try:
        pin([os.getpid()], {min(cores)})
        late = threading.Thread(target=lambda: affinity.update(late=os.sched_getaffinity(0)))
        late.start()
        late.join()
        stop.set()
        early.join()
        assert affinity == {"early": {min(cores)}, "late": {min(cores)}} and os.sched_getaffinity(0) == {min(cores)}
    finally:
        stop.set()
        pin([os.getpid()], cores)
    assert os.sched_getaffinity(0) == cores


def test_two_busy_processes_on_one_core_each_wait_for_it() -> None:
    spin = "import time\nend = time.time() + 1.0\nwhile time.time() < end: pass"
    core = {min(os.sched_getaffinity(0))}
    busy = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(2)]
    pin([process.pid for process in busy], core)
    time.sleep(0.8)
    waited = [runqueue_wait_seconds(process.pid) for process in busy]
    for process in busy:
        process.wait()
    assert all(wait > 0.1 for wait in waited), waited  # each ran about half the time it wanted
    with pytest.raises(OSError):
        runqueue_wait_seconds(busy[0].pid)
