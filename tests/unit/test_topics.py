"""Records on our topics stay far below Kafka's 1 MB message limit however many rows a batch has."""

from typing import Any

import pytest

from streams import topics
from streams.models import AckBatch

KAFKA_MAX_MESSAGE = 1_048_576


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    async def send(self, key: str, value: Any, **_: Any) -> None:
        self.sent.append((key, value))


async def test_acks_of_a_large_batch_are_split_into_small_records(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder()
    monkeypatch.setattr(topics, "acks", recorder)
    rows = [{"ID": f"{i:036d}", "JobID": "607105", "SubscriberID": "70257389", "EventDate": "9/7/2020 7:31:04 AM",
             "IsUnique": "True", "ListID": "12"} for i in range(7_500)]  # fmt: skip
    await topics.send_acks("ien", "processed", rows)
    assert [key for key, _ in recorder.sent] == ["ien"] * 8
    batches: list[AckBatch] = [value for _, value in recorder.sent]
    assert [row for batch in batches for row in batch.rows] == rows
    assert all(batch.status == "processed" and batch.tenant == "ien" for batch in batches)
    assert max(len(batch.dumps(serializer="json")) for batch in batches) < KAFKA_MAX_MESSAGE // 4


async def test_click_rows_with_long_links_are_split_by_size(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder()
    monkeypatch.setattr(topics, "click_rows", recorder)
    rows = [{"ID": str(i), "JobID": "607105", "LinkContent": "https://x.io/?" + "p" * 8_000} for i in range(300)]
    await topics.append_click_rows("ien", "607105", rows, read_at=0.0, source="sfmc")
    assert len(recorder.sent) > 1 and {key for key, _ in recorder.sent} == {"ien:607105"}
    assert [row for _, value in recorder.sent for row in value.rows] == rows
    assert max(len(value.dumps(serializer="json")) for _, value in recorder.sent) < KAFKA_MAX_MESSAGE
