"""Records on our topics: one per partition of their sends, and far below Kafka's 1 MB message limit however
many rows a batch has."""

from typing import Any

import faust

from streams.settings import load_settings
from streams.topic_records import AckBatch, ClickEvent, ClickEvents
from streams.topics import Topics, partition_of

KAFKA_MAX_MESSAGE = 1_048_576


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []
        self.partitions: list[int | None] = []

    async def send(self, key: str, value: Any, partition: int | None = None, **_: Any) -> None:
        self.sent.append((key, value))
        self.partitions.append(partition)


def recorded(name: str) -> tuple[Topics, Recorder]:
    """Topics of an app never started, whose topic ``name`` records what is sent to it."""
    topics = Topics(faust.App("topics-unit"), load_settings())
    recorder = Recorder()
    setattr(topics, name, recorder)
    return topics, recorder


async def test_acks_of_a_large_batch_are_split_into_small_records() -> None:
    topics, recorder = recorded("acks")
    rows = [{"ID": f"{i:036d}", "JobID": "607105", "SubscriberID": "70257389", "EventDate": "9/7/2020 7:31:04 AM",
             "IsUnique": "True", "ListID": "12"} for i in range(7_500)]  # fmt: skip
    await topics.send_acks("ien", "processed", rows)
    assert [key for key, _ in recorder.sent] == ["ien"] * 8
    batches: list[AckBatch] = [value for _, value in recorder.sent]
    assert [row for batch in batches for row in batch.rows] == rows
    assert all(batch.status == "processed" and batch.tenant == "ien" for batch in batches)
    assert max(len(batch.dumps(serializer="json")) for batch in batches) < KAFKA_MAX_MESSAGE // 4


async def test_click_rows_with_long_links_are_split_by_size() -> None:
    topics, recorder = recorded("click_rows")
    rows = [{"ID": str(i), "JobID": "607105", "LinkContent": "https://x.io/?" + "p" * 8_000} for i in range(300)]
    await topics.append_click_rows("ien", rows, read_at=0.0, source="sfmc")
    partition = topics.send_partition("ien", "607105")
    assert len(recorder.sent) > 1 and {key for key, _ in recorder.sent} == {f"ien:{partition}"}
    assert set(recorder.partitions) == {partition}
    assert [row for _, value in recorder.sent for row in value.rows] == rows
    assert max(len(value.dumps(serializer="json")) for _, value in recorder.sent) < KAFKA_MAX_MESSAGE


async def test_a_page_goes_out_as_one_record_per_partition_of_its_sends() -> None:
    topics, recorder = recorded("click_rows")
    rows = [{"ID": str(i), "JobID": f" {607000 + i % 40} "} for i in range(400)]
    await topics.append_click_rows("ien", rows, read_at=1.0, source="sfmc")
    partitions = {topics.send_partition("ien", str(607000 + j)) for j in range(40)}
    assert sorted(recorder.partitions) == sorted(partitions)  # one record each, with every row of its sends
    for (key, value), partition in zip(recorder.sent, recorder.partitions, strict=True):
        assert key == f"ien:{partition}"
        assert {topics.send_partition("ien", row["JobID"].strip()) for row in value.rows} == {partition}
    assert sorted(int(row["ID"]) for _, value in recorder.sent for row in value.rows) == list(range(400))


async def test_clicks_go_with_their_sends() -> None:
    topics, recorder = recorded("click_events")
    sends = [f"mc.ien.send*{607000 + j}" for j in range(20)]
    click = ClickEvent("r", "mc.ien.subscriber*1", "5f47e1c107809f52ef34357c", "k9", 2.0, 1.0, False, {"ID": "r"})
    pending = await topics.send_click_events("ien", {send: [click] for send in sends})
    assert len(pending) == len(recorder.sent) == len({partition_of(send, topics.partitions) for send in sends})
    for (_, value), partition in zip(recorder.sent, recorder.partitions, strict=True):
        decoded = ClickEvents.loads(value.dumps(serializer="json"), serializer="json")
        assert {partition_of(send, topics.partitions) for send in decoded.sends} == {partition}
        assert all(event == click for _, event in decoded.clicks())
    assert sorted(send for _, value in recorder.sent for send in value.sends) == sorted(sends)
