"""Click rows to click events, and click events to ``event-email-clicks`` updates (pure functions)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from bson import ObjectId
from pymongo import UpdateOne

from streams.entity_ids import References, entity, object_id
from streams.links import parse_link
from streams.marketing_cloud.records import row_keys
from streams.marketing_cloud.values import parse_bool, parse_de_date
from streams.topic_records import ClickEvent

CHICAGO = ZoneInfo("America/Chicago")
MAX_LINK_LENGTH = 8192
"""Characters; a row with a longer ``LinkContent`` is skipped and dead-lettered."""


class RowRejected(ValueError):
    """A row that does not become a click. ``skip``: SPEC has it marked processed anyway (as skipped);
    ``bad``: it is bad input and goes to the dead-letter topic."""

    def __init__(self, reason: str, *, skip: bool = False, bad: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.skip = skip
        self.bad = bad


def chicago_day(moment: datetime) -> datetime:
    """Start of the moment's day in America/Chicago, as an aware datetime."""
    local = moment.astimezone(CHICAGO)
    return datetime(local.year, local.month, local.day, tzinfo=CHICAGO)


def _numeric(row: Mapping[str, str], name: str) -> str:
    value = (row.get(name) or "").strip()
    if not value.isascii() or not value.isdigit():
        raise RowRejected(f"{name} is missing" if not value else f"{name} is not numeric")
    return value


def parse_row(tenant: str, row: Mapping[str, str], skip_job_ids: frozenset[str]) -> ClickEvent:
    """Validate one click-log row (SPEC section 3) and build its event, or raise ``RowRejected``."""
    row_id = (row.get("ID") or "").strip()
    if not row_id:
        raise RowRejected("ID is missing")
    job_id = _numeric(row, "JobID")
    if job_id in skip_job_ids:
        raise RowRejected(f"JobID {job_id} is on the skip list", skip=True, bad=False)
    subscriber_id = _numeric(row, "SubscriberID")
    try:
        moment = parse_de_date(row.get("EventDate") or "")
        day = chicago_day(moment)
    except ValueError:
        raise RowRejected("EventDate is missing or not a date like 9/7/2020 7:31:04 AM") from None
    except OverflowError:
        raise RowRejected("EventDate is out of range") from None
    try:
        bot = parse_bool((row.get("IsBot_v3") or "").strip() or "False")  # missing, empty or blank: no bot
    except ValueError:
        raise RowRejected("IsBot_v3 is not a boolean") from None
    content = row.get("LinkContent") or ""
    if len(content) > MAX_LINK_LENGTH:
        raise RowRejected(f"LinkContent is longer than {MAX_LINK_LENGTH} characters", skip=True)
    link = parse_link(content)
    if link is None:
        raise RowRejected("LinkContent has no urlId and ack in an accepted form", skip=True)
    return ClickEvent(
        row_id=row_id,
        subscriber=entity(tenant, "subscriber", subscriber_id),
        url_id=link.url_id,
        ack=link.ack,
        time=moment.timestamp(),
        day=day.timestamp(),
        bot=bot,
        keys=row_keys(row),
    )


@dataclass
class _ClickDoc:
    last: float
    guids: set[str] = field(default_factory=set)
    bots: set[str] = field(default_factory=set)
    clicks: list[int] = field(default_factory=list)


@dataclass
class ClickUpdate:
    """The writes of one ``event-email-clicks`` document: ``guids`` for the first bulk (adds guids; creates the
    document), ``bots`` for the second (None without a bot row), and ``clicks``: the positions, in
    ``click_updates``' input, of the clicks folded into it (to know whose rows a refused write holds)."""

    guids: UpdateOne
    bots: UpdateOne | None
    clicks: list[int]


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def click_updates(clicks: Iterable[tuple[str, ClickEvent]], ids: References) -> list[ClickUpdate]:
    """Fold ``(send entity, event)`` pairs into one upsert per (day, send, url, subscriber) document;
    ``ids`` gives the ``_id`` of each send and subscriber entity (``job`` and ``usr``, SPEC 4).

    Each document's ``guids`` operations go in one unordered bulk write, then its ``bots`` operations in a
    second: they are apart because ``$addToSet`` and ``$pull`` may not touch the same field in one update; a
    row moves to the list its latest flag names.
    """
    docs: dict[tuple[float, str, str, str], _ClickDoc] = {}
    for position, (send, event) in enumerate(clicks):
        key = (event.day, send, event.url_id, event.subscriber)
        doc = docs.get(key)
        if doc is None:
            doc = docs[key] = _ClickDoc(last=event.time)
        doc.last = max(doc.last, event.time)
        (doc.bots if event.bot else doc.guids).add(event.row_id)
        (doc.guids if event.bot else doc.bots).discard(event.row_id)
        doc.clicks.append(position)
    updates: list[ClickUpdate] = []
    for (day, send, url_id, subscriber), doc in docs.items():
        natural = {"day": _utc(day), "job": ids[send], "url": ObjectId(url_id), "usr": ids[subscriber]}
        on_insert = {"_id": object_id(f"click|{day}|{send}|{url_id}|{subscriber}"), "n": 0}
        guids, bots = sorted(doc.guids), sorted(doc.bots)
        updates.append(ClickUpdate(UpdateOne(natural, {
            "$setOnInsert": on_insert,
            "$max": {"last": _utc(doc.last)},
            "$addToSet": {"guids": {"$each": guids}},
            "$pull": {"bots": {"$in": guids}},
        }, upsert=True), UpdateOne(natural, {
            "$addToSet": {"bots": {"$each": bots}},
            "$pull": {"guids": {"$in": bots}},
        }) if bots else None, doc.clicks))
    return updates
