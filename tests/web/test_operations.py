"""The operator's view in process: dead letters grouped and filtered (``streams.web.dead_letters``), rates from the
sampled counters (``streams.web.rates``), and the terminal rendering of ``leads-sync status``."""

from __future__ import annotations

from typing import Any

from streams.web import dead_letters
from streams.web.dead_letters import DeadLetterIndex, identity, requeue_command
from streams.web.rates import RateHistory
from streams.web.terminal import render, table

ROW = {"ID": "2c0c", "JobID": "607105", "SubscriberID": "70257389", "EventDate": "9/7/2020 7:31:04 AM",
       "IsUnique": "True", "ListID": "12", "LinkContent": "https://x.io/?email=someone@example.com"}
KEYS = {name: ROW[name] for name in ("ID", "JobID", "SubscriberID", "EventDate", "IsUnique", "ListID")}


def letter(stage: str, reason: str, at: float, tenant: str = "ien", source: Any = None) -> dict[str, Any]:
    return {"stage": stage, "reason": reason, "tenant": tenant, "source": ROW if source is None else source, "at": at}


def test_letters_are_grouped_by_stage_and_reason_largest_first_with_the_newest_examples() -> None:
    index = DeadLetterIndex()
    for i in range(7):
        index.add(f"ien:{i}", letter("ingest", "no JobID", 1000.0 + i))
    index.add("ien:x", letter("ingest", "bad EventDate", 2000.0))
    index.add("mc.ien.send*9", letter("resolve-send", "SFMC returned no send 9", 3000.0,
                                      source={"entity": "mc.ien.send*9"}))
    report = index.report(examples=3)
    assert report["total"] == 9 and report["newest_at"] == 3000.0
    ingest, resolve = report["stages"]
    assert (ingest["stage"], ingest["count"], resolve["stage"], resolve["count"]) == ("ingest", 8, "resolve-send", 1)
    assert ingest["requeue"] == "leads-sync replay-dead-letters --stage ingest" == requeue_command("ingest")
    assert [(r["reason"], r["count"]) for r in ingest["reasons"]] == [("no JobID", 7), ("bad EventDate", 1)]
    assert [e["key"] for e in ingest["reasons"][0]["examples"]] == ["ien:6", "ien:5", "ien:4"]  # newest first
    assert ingest["reasons"][0]["last_at"] == 1006.0
    assert resolve["reasons"][0]["examples"][0]["entity"] == "mc.ien.send*9"


def test_an_example_shows_row_keys_and_positions_never_a_body_or_other_fields() -> None:
    assert identity(ROW) == {"keys": KEYS}  # no LinkContent (it may carry an address)
    assert identity({"keys": KEYS}) == {"keys": KEYS}  # an ack's source
    assert identity({"send": "mc.ien.send*1", "event": {"keys": KEYS, "link": "x"}}) == {
        "keys": KEYS, "send": "mc.ien.send*1"}
    kinesis = {"stream": "clicks", "shard": "s-0", "sequence": "49", "body": '{"tenant": "ien", "secret": "x"}'}
    assert identity(kinesis) == {"stream": "clicks", "shard": "s-0", "sequence": "49"}
    assert identity("not an object") == {}


def test_filters_by_stage_tenant_and_time() -> None:
    index = DeadLetterIndex()
    index.add("a", letter("ingest", "no JobID", 600.0))
    index.add("b", letter("ingest", "no JobID", 1200.0, tenant="acme"))
    index.add("c", letter("ack", "SFMC refused", 1800.0))
    assert index.report(stage="ack")["total"] == 1
    assert index.report(tenant="acme")["total"] == 1
    assert index.report(since=1000.0)["total"] == 2
    assert index.report(since=1000.0, until=1500.0)["total"] == 1
    within = index.report(stage="ingest", since=1000.0)["stages"][0]["reasons"][0]
    assert within["tenants"] == {"acme": 1} and [e["key"] for e in within["examples"]] == ["b"]
    assert index.report(stage="write-models") == {"total": 0, "newest_at": 1800.0, "stages": []}


def test_groups_are_capped_and_unreadable_records_counted(monkeypatch: Any) -> None:
    monkeypatch.setattr(dead_letters, "MAX_GROUPS", 2)
    index = DeadLetterIndex()
    for i in range(5):
        index.add(str(i), letter("ingest", f"reason {i}", 100.0))
    index.add("junk", None)
    report = index.report()
    assert report["total"] == 6 and index.letters == 6
    reasons = {(s["stage"], r["reason"]): r["count"] for s in report["stages"] for r in s["reasons"]}
    other = dead_letters.OTHER_REASONS
    assert reasons == {("ingest", "reason 0"): 1, ("ingest", "reason 1"): 1, ("ingest", other): 3,
                       ("unreadable", other): 1}


def test_rates_are_per_second_between_samples_and_a_restart_counts_from_zero() -> None:
    totals = {"rows read": 0.0}
    history = RateHistory({"rows read": lambda: totals["rows read"]})
    for at, value in ((0.0, 0.0), (10.0, 50.0), (20.0, 250.0), (30.0, 20.0)):
        totals["rows read"] = value
        history.sample(at)
    assert history.rates()["series"] == {"rows read": [[10.0, 5.0], [20.0, 20.0], [30.0, 2.0]]}


def test_rates_keep_the_last_fifteen_minutes() -> None:
    history = RateHistory({"x": lambda: 1.0})
    for i in range(200):
        history.sample(i * 10.0)
    points = history.rates()["series"]["x"]  # type: ignore[index]
    assert len(points) == 90 and points[0][0] == 1100.0


def test_the_terminal_status_names_each_section() -> None:
    index = DeadLetterIndex()
    index.add("ien:1", letter("ingest", "no JobID", 1000.0))
    replies = {
        "status": {"worker": {"url": "http://w:6066", "leader": True}, "generated_at": 1000.0,
                   "business_units": {"ien": {"rows_read": 120, "events": 100, "skipped": 10, "bad": 1, "refused": 2,
                                              "marked": 110, "last_poll_finished": 990.0, "last_poll_seconds": 1.5,
                                              "last_error": None, "token": {"state": "ok"}}},
                   "topics": {"acks": {"records": 9, "lag": 3}, "dead-letter": {"records": 1, "newest_at": 1000.0}}},
        "dead_letters": index.report(),
        "rates": {"window": 900, "series": {"rows read": [[990.0, 4.0], [1000.0, 12.5]]}},
    }
    text = render(replies)
    assert "leader" in text and "ien" in text and "120" in text and "ok" in text
    assert "rows read  12.5  12.5" in text
    assert "not consumed" in text  # the dead-letter topic has no lag
    assert "ingest: 1   requeue: leads-sync replay-dead-letters --stage ingest" in text
    assert "no JobID" in text


def test_tables_align_columns() -> None:
    assert table(["a", "bb"], [["x", 1], ["yyy", 22]]).splitlines() == ["a    bb", "---  --", "x     1", "yyy  22"]
