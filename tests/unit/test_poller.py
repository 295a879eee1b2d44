"""What the poller appends of a page: rows not appended within ``reack_after_seconds``, each once."""

from pathlib import Path

from streams.poller import PollState
from streams.settings import Settings
from streams.tables.row_index import RowIndex

REACK = 300.0


def row(subscriber: str, clicked: str = "12/1/2026 10:00:00 AM") -> dict[str, str]:
    return {"JobID": "7", "ListID": "1", "BatchID": "1", "SubscriberID": subscriber, "URL": "https://x.test/a",
            "EventDate": clicked}


def state(tmp_path: Path) -> PollState:
    settings = Settings(data_dir=tmp_path, reack_after_seconds=REACK)
    return PollState("ien", settings, RowIndex(tmp_path / "appended", REACK))


def test_a_page_appends_new_rows_once_and_repeats_after_reack_only(tmp_path: Path) -> None:
    poll = state(tmp_path)
    assert poll.new([row("1"), row("2"), row("1")], now=1000.0) == [row("1"), row("2")]
    assert poll.new([row("1"), row("3")], now=1000.0 + REACK - 1) == [row("3")]
    assert poll.new([row("1"), row("3")], now=1000.0 + REACK) == [row("1")]  # row 1's mark was lost: again


def test_the_newest_click_is_noted_even_from_rows_not_appended(tmp_path: Path) -> None:
    poll = state(tmp_path)
    poll.new([row("1", "12/1/2026 10:00:00 AM")], now=1000.0)
    poll.new([row("1", "12/1/2026 11:30:00 AM"), row("2", "not a date")], now=1001.0)
    assert poll.newest is not None and (poll.newest.hour, poll.newest.minute) == (11, 30)
