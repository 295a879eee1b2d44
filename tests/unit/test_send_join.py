"""The models sink's send/email join (``streams.models_sink.join``): a send's urls need its email's category,
and sends and emails arrive in any order, in any batches."""

from __future__ import annotations

from typing import Any

from streams.models_sink import join
from streams.topic_records import EntitySnapshot

EMAIL = "mc.ien.email*117131"
CATEGORY = "mc.ien.category*4002"


def send(ident: str, email: int | None = 117131, acks: list[str] | None = None) -> EntitySnapshot:
    return EntitySnapshot(entity=f"mc.ien.send*{ident}", tenant="ien", kind="send",
                          data={"id": int(ident), "email_id": email}, retrieved_at=1.0, acks=acks or ["k9"])


def email(category: int | None = 4002) -> EntitySnapshot:
    return EntitySnapshot(entity=EMAIL, tenant="ien", kind="email", data={"id": 117131, "category_id": category},
                          retrieved_at=1.0)


def ready(pairs: list[tuple[EntitySnapshot, str]]) -> list[tuple[str, list[str] | None, str]]:
    return sorted((snapshot.entity, snapshot.acks, category) for snapshot, category in pairs)


def test_a_send_whose_emails_category_is_known_is_ready() -> None:
    links: dict[str, Any] = {}
    assert join([email()], [], links) == []
    assert ready(join([], [send("607105")], links)) == [("mc.ien.send*607105", ["k9"], CATEGORY)]
    assert links[EMAIL] == {"category": CATEGORY, "sends": ["mc.ien.send*607105"]}


def test_an_email_and_its_send_in_one_batch() -> None:
    assert ready(join([email()], [send("607105")], {})) == [("mc.ien.send*607105", ["k9"], CATEGORY)]


def test_an_email_arriving_after_its_sends_makes_them_ready() -> None:
    links: dict[str, Any] = {}
    assert join([], [send("1")], links) == []
    assert join([], [send("2", acks=["a", "b"])], links) == []
    assert links[EMAIL] == {"sends": ["mc.ien.send*1", "mc.ien.send*2"]}  # no category: the email has not come
    assert ready(join([email()], [], links)) == [("mc.ien.send*1", ["k9"], CATEGORY),
                                                 ("mc.ien.send*2", ["a", "b"], CATEGORY)]


def test_a_send_is_listed_once_and_ready_once_with_its_latest_snapshot() -> None:
    links: dict[str, Any] = {}
    join([], [send("1")], links)
    join([], [send("1", acks=["k9", "z"])], links)  # republished with a new ack code
    assert links[EMAIL]["sends"] == ["mc.ien.send*1"]
    assert ready(join([email()], [send("1", acks=["k9", "z", "y"])], links)) == [
        ("mc.ien.send*1", ["k9", "z", "y"], CATEGORY)]
    assert links[EMAIL]["sends"] == ["mc.ien.send*1"]
    assert links["mc.ien.send*1"]["send"]["acks"] == ["k9", "z", "y"]


def test_an_email_without_a_category_makes_its_sends_ready_without_one() -> None:
    links: dict[str, Any] = {}
    join([], [send("1")], links)
    assert ready(join([email(category=None)], [], links)) == [("mc.ien.send*1", ["k9"], "")]


def test_an_email_read_again_keeps_its_waiting_sends() -> None:
    links: dict[str, Any] = {}
    join([email()], [send("1")], links)
    assert ready(join([email(category=4003)], [], links)) == [("mc.ien.send*1", ["k9"], "mc.ien.category*4003")]
    assert links[EMAIL] == {"category": "mc.ien.category*4003", "sends": ["mc.ien.send*1"]}


def test_a_send_without_an_email_is_recorded_and_never_ready() -> None:
    links: dict[str, Any] = {}
    assert join([email()], [send("1", email=None)], links) == []
    assert links["mc.ien.send*1"]["send"]["data"] == {"id": 1, "email_id": None}
    assert "sends" not in links[EMAIL]
