import os
import time

import pytest

from bench.machine import MACHINE, CpuSampler, cpu_table, growth


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
