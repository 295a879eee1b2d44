"""Pure parts of the web view: the Prometheus writer, offsets and lag, the counters."""

from __future__ import annotations

from streams import metrics
from streams.web.exposition import Family, render
from streams.web.status import Offsets, topic_report


def test_render_escapes_and_formats() -> None:
    text = render([
        Family("x_total", "counter", "Help with \\ and\nnewline").add(3, tenant='a"b\\c\nd'),
        Family("y_seconds", "summary", "Timing.").add(0.25, "y_seconds_sum").add(2, "y_seconds_count"),
        Family("z", "gauge", "No labels.").add(float("nan")),
    ])
    assert text.splitlines() == [
        "# HELP x_total Help with \\\\ and\\nnewline",
        "# TYPE x_total counter",
        'x_total{tenant="a\\"b\\\\c\\nd"} 3',
        "# HELP y_seconds Timing.",
        "# TYPE y_seconds summary",
        "y_seconds_sum 0.25",
        "y_seconds_count 2",
        "# HELP z No labels.",
        "# TYPE z gauge",
        "z NaN",
    ]


def test_lag_counts_from_the_log_start_when_nothing_is_committed() -> None:
    assert Offsets("t", 0, earliest=0, end=10, committed=4).lag == 6
    assert Offsets("t", 0, earliest=3, end=10, committed=None).lag == 7
    assert Offsets("t", 0, earliest=8, end=10, committed=4).lag == 2  # committed offset fell off the log
    assert Offsets("t", 0, earliest=0, end=0, committed=None).lag == 0


def test_topic_report_sums_partitions_under_short_names() -> None:
    report = topic_report([Offsets("p.acks", 1, 0, 5, 5), Offsets("p.acks", 0, 2, 9, 4)], {"p.acks": "acks"})
    assert report["acks"]["end"] == 14
    assert report["acks"]["records"] == 12
    assert report["acks"]["lag"] == 5
    assert [p["partition"] for p in report["acks"]["partitions"]] == [0, 1]


async def test_counter_and_timer() -> None:
    counter = metrics.Counter("test_things_total", "Things.")
    counter.inc(2, kind="a")
    counter.inc(kind="a")
    assert counter.value(kind="a") == 3
    timer = metrics.Timer("test_wait_seconds", "Waits.")

    async def answer() -> int:
        return 42

    assert await timer.time(answer(), call="x") == 42
    samples = {(name, labels): value for name, labels, value in timer.samples()}
    assert samples[("test_wait_seconds_count", (("call", "x"), ("outcome", "ok")))] == 1
    metrics.REGISTRY.remove(counter)
    metrics.REGISTRY.remove(timer)
