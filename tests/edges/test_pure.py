"""Pure parts of the edges: message parsing, grouping, Kinesis shard order, ack message shapes."""

from __future__ import annotations

import orjson
import pytest

from streams.edges.formats import (
    ACK_ROWS_PER_MESSAGE,
    Message,
    MessageRejected,
    ack_messages,
    group_messages,
    parse_ack_message,
    parse_message,
)
from streams.edges.kinesis import SHARD_END, iterator_request, read_to_end, readable_shards

TENANTS = frozenset({"ien", "acme"})
ROW = {"ID": "a", "JobID": "7", "SubscriberID": "1", "EventDate": "9/7/2020 7:31:04 AM", "LinkContent": "x",
       "IsUnique": "True", "ListID": "3", "IsBot_v3": "False"}


def test_rows_form_and_single_row_form() -> None:
    assert parse_message(orjson.dumps({"tenant": "ien", "rows": [ROW, ROW]}), TENANTS) == Message("ien", [ROW, ROW])
    assert parse_message(orjson.dumps({"tenant": "acme", "row": ROW}).decode(), TENANTS) == Message("acme", [ROW])


def test_scalar_values_become_sfmc_strings() -> None:
    message = parse_message(orjson.dumps({"tenant": "ien", "row": {"ID": "a", "JobID": 7, "IsUnique": True,
                                                                    "ListID": None}}), TENANTS)
    assert message.rows == [{"ID": "a", "JobID": "7", "IsUnique": "True", "ListID": ""}]


@pytest.mark.parametrize(("body", "reason", "tenant"), [
    (b"{not json", "not JSON", ""),
    (b"[1, 2]", "not a JSON object", ""),
    (b'{"rows": []}', "missing tenant", ""),
    (b'{"tenant": "nobody", "row": {}}', "is not a configured business unit", "nobody"),
    (b'{"tenant": "ien"}', "missing rows", "ien"),
    (b'{"tenant": "ien", "rows": {}}', "rows is not a list", "ien"),
    (b'{"tenant": "ien", "rows": []}', "rows is empty", "ien"),
    (b'{"tenant": "ien", "rows": [1]}', "row 0 is not a JSON object", "ien"),
    (b'{"tenant": "ien", "row": {"ID": {"a": 1}}}', "field 'ID' is not a string", "ien"),
])
def test_poison_messages_are_rejected_with_a_reason(body: bytes, reason: str, tenant: str) -> None:
    with pytest.raises(MessageRejected) as caught:
        parse_message(body, TENANTS)
    assert reason in caught.value.reason
    assert caught.value.tenant == tenant


def test_rows_are_grouped_by_tenant_in_arrival_order() -> None:
    other = {**ROW, "ID": "b", "JobID": " 8 "}
    groups = group_messages([Message("ien", [ROW]), Message("acme", [ROW]), Message("ien", [other, ROW])])
    assert groups == {"ien": [ROW, other, ROW], "acme": [ROW]}


def test_children_of_a_reshard_wait_for_their_parents() -> None:
    shards = [
        {"ShardId": "s0"},
        {"ShardId": "s1"},
        {"ShardId": "s2", "ParentShardId": "s0"},
        {"ShardId": "s3", "ParentShardId": "s0"},
        {"ShardId": "s4", "ParentShardId": "s1", "AdjacentParentShardId": "s2"},
        {"ShardId": "s5", "ParentShardId": "gone"},  # parent past retention: no longer listed
    ]
    assert readable_shards(shards, {}) == ["s0", "s1", "s5"]
    assert readable_shards(shards, {"s0": "12"}) == ["s0", "s1", "s5"]
    assert readable_shards(shards, {"s0": SHARD_END}) == ["s1", "s2", "s3", "s5"]
    assert readable_shards(shards, {"s0": SHARD_END, "s1": SHARD_END}) == ["s2", "s3", "s5"]
    assert readable_shards(shards, {"s0": SHARD_END, "s1": SHARD_END, "s2": SHARD_END}) == ["s3", "s4", "s5"]


def test_iterators_resume_just_after_the_checkpoint() -> None:
    assert iterator_request("st", "s0", "495", "LATEST") == {
        "StreamName": "st", "ShardId": "s0", "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
        "StartingSequenceNumber": "495"}
    assert iterator_request("st", "s0", None, "TRIM_HORIZON")["ShardIteratorType"] == "TRIM_HORIZON"


def test_ack_messages_carry_at_most_50_rows_and_read_back() -> None:
    rows = [{**ROW, "ID": str(i)} for i in range(ACK_ROWS_PER_MESSAGE * 2 + 1)]
    bodies = ack_messages("ien", "processed", rows)
    assert [len(orjson.loads(body)["rows"]) for body in bodies] == [50, 50, 1]
    assert [row for body in bodies for row in parse_ack_message(body, TENANTS).rows] == rows
    with pytest.raises(MessageRejected, match="no ID"):
        parse_ack_message(orjson.dumps({"tenant": "ien", "rows": [{"JobID": "1"}]}), TENANTS)


def test_a_closed_shard_is_done_at_its_ending_sequence_number() -> None:
    closed = {"ShardId": "s0", "SequenceNumberRange": {"StartingSequenceNumber": "1", "EndingSequenceNumber": "90"}}
    assert read_to_end(closed, "90") and read_to_end(closed, "91")
    assert not read_to_end(closed, "89") and not read_to_end(closed, None)
    assert not read_to_end({"ShardId": "s1", "SequenceNumberRange": {"StartingSequenceNumber": "1"}}, "500")


def test_the_aws_secret_never_prints() -> None:
    from streams.settings import load_settings

    settings = load_settings(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="s3cr3t-value")
    assert "s3cr3t-value" not in repr(settings) and "s3cr3t-value" not in str(settings.model_dump())
