"""Pure parts of the web view: offsets and lag, and the status page's script."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from streams.web.page import PAGE
from streams.web.status import Offsets, topic_report


def test_lag_counts_from_the_log_start_when_nothing_is_committed() -> None:
    assert Offsets("t", 0, earliest=0, end=10, committed=4).lag == 6
    assert Offsets("t", 0, earliest=3, end=10, committed=None).lag == 7
    assert Offsets("t", 0, earliest=8, end=10, committed=4).lag == 2  # committed offset fell off the log
    assert Offsets("t", 0, earliest=0, end=0, committed=None).lag == 0


def test_topic_report_sums_partitions_under_short_names() -> None:
    report = topic_report([Offsets("p.acks", 1, 0, 5, 5), Offsets("p.acks", 0, 2, 9, 4)], {"p.acks": "acks"},
                          consumed={"acks"})
    assert report["acks"]["end"] == 14
    assert report["acks"]["records"] == 12
    assert report["acks"]["lag"] == 5
    assert [p["partition"] for p in report["acks"]["partitions"]] == [0, 1]


def test_a_topic_nothing_consumes_has_records_and_no_lag() -> None:
    offsets = [Offsets("p.dead-letter", 0, 0, 136, None), Offsets("p.acks", 0, 0, 9, 4)]
    report = topic_report(offsets, {"p.dead-letter": "dead-letter", "p.acks": "acks"}, consumed={"acks"})
    assert report["dead-letter"]["records"] == 136
    assert "lag" not in report["dead-letter"] and "committed" not in report["dead-letter"]["partitions"][0]
    assert report["acks"]["lag"] == 5


def test_the_pages_script_parses(tmp_path: Path) -> None:
    """A syntax error stops the whole script, and the page shows nothing: checked here with Node where it is
    installed, and by the browser tests in any case."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = tmp_path / "page.js"
    script.write_text(PAGE.split("<script>", 1)[1].split("</script>", 1)[0])
    checked = subprocess.run([node, "--check", str(script)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr
