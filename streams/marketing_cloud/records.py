"""Typed SFMC objects and their construction from flattened SOAP results or REST assets (pure)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from .errors import MalformedResponse
from .values import parse_int, parse_optional_int, parse_soap_date

T = TypeVar("T")


@dataclass(frozen=True)
class Send:
    """A SOAP ``Send``, a field per property. Dates are aware, in server time (UTC-06:00); ``email_id`` and
    ``sent_date`` are None and the counts 0 where SFMC leaves them out or empty."""

    id: int
    email_id: int | None
    created_date: datetime
    modified_date: datetime
    hard_bounces: int
    soft_bounces: int
    other_bounces: int
    email_name: str
    from_address: str
    from_name: str
    subject: str
    preview_url: str
    status: str
    sent_date: datetime | None
    number_sent: int
    number_delivered: int
    unique_opens: int
    unique_clicks: int
    unsubscribes: int
    forwarded_emails: int


@dataclass(frozen=True)
class Subscriber:
    """A SOAP ``Subscriber``; ``created_date`` is aware, in server time; ``attributes`` maps each attribute's
    ``Name`` to its ``Value`` (``""`` for none)."""

    id: int
    email_address: str
    created_date: datetime
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Email:
    """An email, from a Content Builder asset or classic SOAP ``Email``; dates are aware, in server time."""

    id: int
    """The legacy (classic) email id, which sends refer to as ``Email.ID``."""
    name: str
    subject: str
    category_id: int | None
    created_date: datetime
    modified_date: datetime
    content_builder: bool = False
    """True when found as a Content Builder asset, False when read from classic SOAP ``Email``."""


@dataclass(frozen=True)
class DataFolder:
    """A SOAP ``DataFolder``; ``parent_id`` is None at the root (``ParentFolder.ID`` 0 or absent)."""

    id: int
    parent_id: int | None
    name: str


@dataclass(frozen=True)
class RowFailure:
    """A click-log row SFMC refused to update (e.g. errorcode 10006: its keys match no primary key)."""

    keys: dict[str, str]
    code: int
    message: str


SEND_PROPERTIES = (
    "ID", "Email.ID", "CreatedDate", "ModifiedDate", "HardBounces", "SoftBounces", "OtherBounces",
    "EmailName", "FromAddress", "FromName", "Subject", "PreviewURL", "Status", "SentDate", "NumberSent",
    "NumberDelivered", "UniqueOpens", "UniqueClicks", "Unsubscribes", "ForwardedEmails",
)  # fmt: skip
SUBSCRIBER_PROPERTIES = ("ID", "EmailAddress", "CreatedDate")
EMAIL_PROPERTIES = ("ID", "Name", "Subject", "CategoryID", "CreatedDate", "ModifiedDate")
FOLDER_PROPERTIES = ("ID", "ParentFolder.ID", "Name")
CLICK_PROPERTIES = (
    "JobID",
    "SubscriberID",
    "EventDate",
    "LinkContent",
    "ID",
    "IsUnique",
    "ListID",
    "IsBot_v3",
)
ROW_KEYS = ("ID", "JobID", "SubscriberID", "EventDate", "IsUnique", "ListID")
"""The click-log DE's primary key, in this order: a row's identity, and what marking it processed names."""


class _Reader:
    """Typed access to one flattened result, naming the object and field in any error."""

    def __init__(self, kind: str, result: Mapping[str, Any]) -> None:
        self.kind = kind
        self.result = result

    def _cast(self, name: str, cast: Callable[[str], T]) -> T:
        value = self.result.get(name)
        if value is None:
            raise MalformedResponse(f"{self.kind} {self.result.get('ID', '?')} has no {name}")
        try:
            return cast(value)
        except ValueError:
            raise MalformedResponse(f"{self.kind} {self.result.get('ID', '?')}: bad {name}") from None

    def text(self, name: str) -> str:
        return str(self.result.get(name) or "")

    def integer(self, name: str) -> int:
        return self._cast(name, parse_int)

    def count(self, name: str) -> int:
        return self.integer(name) if self.text(name).strip() else 0

    def optional_int(self, name: str) -> int | None:
        return self._cast(name, parse_optional_int) if name in self.result else None

    def date(self, name: str) -> datetime:
        return self._cast(name, parse_soap_date)

    def optional_date(self, name: str) -> datetime | None:
        return self.date(name) if self.text(name).strip() else None


def send_from(result: Mapping[str, Any]) -> Send:
    """A flattened SOAP ``Send`` result as a ``Send``; ``MalformedResponse`` when ``ID``, ``CreatedDate`` or
    ``ModifiedDate`` is missing, or a number or date does not parse."""
    r = _Reader("Send", result)
    return Send(
        id=r.integer("ID"),
        email_id=r.optional_int("Email.ID"),
        created_date=r.date("CreatedDate"),
        modified_date=r.date("ModifiedDate"),
        hard_bounces=r.count("HardBounces"),
        soft_bounces=r.count("SoftBounces"),
        other_bounces=r.count("OtherBounces"),
        email_name=r.text("EmailName"),
        from_address=r.text("FromAddress"),
        from_name=r.text("FromName"),
        subject=r.text("Subject"),
        preview_url=r.text("PreviewURL"),
        status=r.text("Status"),
        sent_date=r.optional_date("SentDate"),
        number_sent=r.count("NumberSent"),
        number_delivered=r.count("NumberDelivered"),
        unique_opens=r.count("UniqueOpens"),
        unique_clicks=r.count("UniqueClicks"),
        unsubscribes=r.count("Unsubscribes"),
        forwarded_emails=r.count("ForwardedEmails"),
    )


def subscriber_from(result: Mapping[str, Any]) -> Subscriber:
    """A flattened SOAP ``Subscriber`` result as a ``Subscriber``; ``MalformedResponse`` when ``ID`` or
    ``CreatedDate`` is missing or does not parse."""
    r = _Reader("Subscriber", result)
    attributes = result.get("Attributes") or {}
    return Subscriber(r.integer("ID"), r.text("EmailAddress"), r.date("CreatedDate"), dict(attributes))


def email_from_soap(result: Mapping[str, Any]) -> Email:
    """A flattened SOAP ``Email`` result as an ``Email``; ``MalformedResponse`` when ``ID``, ``CreatedDate`` or
    ``ModifiedDate`` is missing, or a number or date does not parse."""
    r = _Reader("Email", result)
    return Email(r.integer("ID"), r.text("Name"), r.text("Subject"), r.optional_int("CategoryID"),
                 r.date("CreatedDate"), r.date("ModifiedDate"))


def email_from_asset(asset: Any) -> Email | None:
    """A Content Builder asset → Email; ``None`` when it carries no legacy id. ``MalformedResponse`` when the
    asset is not an object, its dates are missing, or its id, category id or dates do not parse."""
    try:
        return _email_from_asset(asset)
    except (AttributeError, TypeError, ValueError) as exc:  # a reply of the wrong shape
        raise MalformedResponse(f"asset query reply has a malformed item: {type(exc).__name__}") from None


def _email_from_asset(asset: Mapping[str, Any]) -> Email | None:
    legacy = (asset.get("legacyData") or {}).get("legacyId")
    if legacy is None:
        legacy = (((asset.get("data") or {}).get("email") or {}).get("legacy") or {}).get("legacyId")
    if legacy is None:
        return None
    subject = ((asset.get("views") or {}).get("subjectline") or {}).get("content") or ""
    category = (asset.get("category") or {}).get("id")
    r = _Reader("asset", {**asset, "ID": str(legacy)})
    return Email(
        id=r.integer("ID"),
        name=r.text("name"),
        subject=str(subject),
        category_id=int(category) if category is not None else None,
        created_date=r.date("createdDate"),
        modified_date=r.date("modifiedDate"),
        content_builder=True,
    )


def folder_from(result: Mapping[str, Any]) -> DataFolder:
    """A flattened SOAP ``DataFolder`` result as a ``DataFolder``; ``MalformedResponse`` when ``ID`` is missing,
    or it or ``ParentFolder.ID`` does not parse."""
    r = _Reader("DataFolder", result)
    return DataFolder(r.integer("ID"), r.optional_int("ParentFolder.ID") or None, r.text("Name"))


def row_keys(row: Mapping[str, str]) -> dict[str, str]:
    """``{key field: value}`` of a click-log row as read, every ``ROW_KEYS`` field (``""`` where the row lacks
    it): what the rowset request that marks it processed names, and what an ack carries."""
    return {name: row.get(name, "") for name in ROW_KEYS}


def primary_key(row: Mapping[str, str]) -> tuple[str, ...]:
    """A row's identity: its ``ROW_KEYS`` values in order (``""`` where it lacks one). Rows may share an ``ID``
    (SFMC's ID is not unique by itself); rows with equal primary keys are the same row."""
    return tuple(row.get(name, "") for name in ROW_KEYS)
