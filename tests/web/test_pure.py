"""Pure parts of the web view: offsets and lag."""

from __future__ import annotations

from streams.web.status import Offsets, topic_report


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
