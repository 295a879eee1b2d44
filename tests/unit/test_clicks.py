from datetime import UTC, datetime

import pytest
from bson import ObjectId
from pymongo import UpdateOne

from streams.clicks import RowRejected, chicago_day, click_updates, parse_row
from streams.entity_ids import derived_ids, object_id

URL = "5f47e1c107809f52ef34357c"


def row(**overrides: str) -> dict[str, str]:
    base = {
        "ID": "r1", "JobID": "607105", "SubscriberID": "70257389", "EventDate": "9/7/2020 7:31:04 AM",
        "LinkContent": f"https://x.io/?lt.lidack={URL}~ack1", "IsUnique": "True", "ListID": "12",
        "IsBot_v3": "False",
    }  # fmt: skip
    return {**base, **overrides}


def test_valid_row_becomes_event() -> None:
    event = parse_row("ien", row(), frozenset())
    assert event.subscriber == "mc.ien.subscriber*70257389"
    assert (event.url_id, event.ack, event.bot) == (URL, "ack1", False)
    # 7:31:04 AM at UTC-06:00 is 13:31:04 UTC
    assert datetime.fromtimestamp(event.time, UTC) == datetime(2020, 9, 7, 13, 31, 4, tzinfo=UTC)
    # Chicago is on daylight time (UTC-05:00) in September
    assert datetime.fromtimestamp(event.day, UTC) == datetime(2020, 9, 7, 5, 0, tzinfo=UTC)
    assert event.keys == {"ID": "r1", "JobID": "607105", "SubscriberID": "70257389",
                          "EventDate": "9/7/2020 7:31:04 AM", "IsUnique": "True", "ListID": "12"}


def test_chicago_day_uses_local_midnight() -> None:
    # 11:30 PM at UTC-06:00 in January is 11:30 PM in Chicago (standard time): same day
    moment = datetime(2021, 1, 15, 5, 30, tzinfo=UTC)
    assert chicago_day(moment).astimezone(UTC) == datetime(2021, 1, 14, 6, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("overrides", "reason", "skip", "bad"),
    [
        ({"ID": ""}, "ID is missing", False, True),
        ({"JobID": "12a"}, "JobID is not numeric", False, True),
        ({"SubscriberID": ""}, "SubscriberID is missing", False, True),
        ({"EventDate": "2020-09-07"}, "EventDate is missing or not a date", False, True),
        ({"IsBot_v3": "maybe"}, "IsBot_v3 is not a boolean", False, True),
        ({"LinkContent": "https://x.io/"}, "LinkContent has no urlId and ack", True, True),
        ({"LinkContent": "x" * 9000}, "LinkContent is longer", True, True),
        ({"JobID": "99"}, "JobID 99 is on the skip list", True, False),
    ],
)
def test_rejected_rows(overrides: dict[str, str], reason: str, skip: bool, bad: bool) -> None:
    with pytest.raises(RowRejected) as caught:
        parse_row("ien", row(**overrides), frozenset({"99"}))
    assert caught.value.reason.startswith(reason)
    assert (caught.value.skip, caught.value.bad) == (skip, bad)


@pytest.mark.parametrize("value", ["", " ", "\r", "\t\n", "\u00a0", "\u2003"])
def test_a_blank_is_bot_is_no_bot_as_an_empty_one(value: str) -> None:
    assert parse_row("ien", row(IsBot_v3=value), frozenset()).bot is False
    assert parse_row("ien", row(IsBot_v3=f"{value}True{value}"), frozenset()).bot is True


def test_fold_merges_clicks_on_one_document() -> None:
    send = "mc.ien.send*607105"
    first = parse_row("ien", row(ID="a"), frozenset())
    later = parse_row("ien", row(ID="b", EventDate="9/7/2020 9:00:00 AM"), frozenset())
    bot = parse_row("ien", row(ID="c", IsBot_v3="True"), frozenset())
    ids = {send: ObjectId(), "mc.ien.subscriber*70257389": ObjectId()}  # adopted documents' _ids
    other = parse_row("ien", row(ID="d", SubscriberID="70257390"), frozenset())
    ids = {**ids, other.subscriber: ObjectId()}
    doc, other_doc = click_updates([(send, first), (send, later), (send, other), (send, bot), (send, first)], ids)
    assert (doc.clicks, other_doc.clicks, other_doc.bots) == ([0, 1, 3, 4], [2], None)  # positions in the input
    natural = {"day": datetime(2020, 9, 7, 5, tzinfo=UTC), "job": ids[send], "url": ObjectId(URL),
               "usr": ids["mc.ien.subscriber*70257389"]}
    assert doc.guids == UpdateOne(natural, {
        "$setOnInsert": {"_id": object_id(f"click|{first.day}|{send}|{URL}|{first.subscriber}"), "n": 0},
        "$max": {"last": datetime(2020, 9, 7, 15, tzinfo=UTC)},
        "$addToSet": {"guids": {"$each": ["a", "b"]}},
        "$pull": {"bots": {"$in": ["a", "b"]}},
    }, upsert=True)
    # the second bulk's write: no upsert, the first one created the document
    assert doc.bots == UpdateOne(natural, {"$addToSet": {"bots": {"$each": ["c"]}}, "$pull": {"guids": {"$in": ["c"]}}})


def test_row_flag_change_moves_it_between_lists() -> None:
    send = "mc.ien.send*1"
    human = parse_row("ien", row(ID="a"), frozenset())
    as_bot = parse_row("ien", row(ID="a", IsBot_v3="true"), frozenset())
    [doc] = click_updates([(send, human), (send, as_bot)], derived_ids([send, human.subscriber]))
    natural = {"day": datetime(2020, 9, 7, 5, tzinfo=UTC), "job": object_id(send), "url": ObjectId(URL),
               "usr": object_id(human.subscriber)}
    assert doc.guids == UpdateOne(natural, {
        "$setOnInsert": {"_id": object_id(f"click|{human.day}|{send}|{URL}|{human.subscriber}"), "n": 0},
        "$max": {"last": datetime(2020, 9, 7, 13, 31, 4, tzinfo=UTC)},
        "$addToSet": {"guids": {"$each": []}},
        "$pull": {"bots": {"$in": []}},
    }, upsert=True)
    assert doc.bots == UpdateOne(natural, {"$addToSet": {"bots": {"$each": ["a"]}}, "$pull": {"guids": {"$in": ["a"]}}})
