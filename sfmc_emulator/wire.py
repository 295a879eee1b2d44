"""The emulator's own reading of SFMC's wire formats (SPEC §2), written apart from the client's.

The client (``streams.marketing_cloud``) has its own; the two are never shared, so a misreading in one is
not mirrored by the other and the tests that run the client against the emulator can catch it.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
PARTNER_NS = "http://exacttarget.com/wsdl/partnerAPI"
XSD = "http://www.w3.org/2001/XMLSchema"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XSI_TYPE = f"{{{XSI}}}type"
XSI_NIL = f"{{{XSI}}}nil"

OPERATORS = frozenset(
    {
        "equals", "notEquals", "greaterThan", "greaterThanOrEqual", "lessThan", "lessThanOrEqual",
        "IN", "between", "like", "isNull", "isNotNull",
    }
)  # fmt: skip
"""The SOAP ``SimpleOperator`` values the emulator evaluates (SPEC §2)."""

ROW_KEYS = ("ID", "JobID", "SubscriberID", "EventDate", "IsUnique", "ListID")
"""The click-log data extension's primary key: a rowset update names exactly these (SPEC §2)."""

SERVER_TZ = timezone(timedelta(hours=-6))
"""SFMC server time: a fixed UTC-06:00, no daylight saving."""

_DE_DATE = "%m/%d/%Y %I:%M:%S %p"


def parse_de_date(value: str) -> datetime:
    """A data extension date (``9/7/2020 7:31:04 AM``, server time) as an aware datetime; ``ValueError``
    when the text is not one."""
    return datetime.strptime(value.strip(), _DE_DATE).replace(tzinfo=SERVER_TZ)


def format_de_date(value: datetime) -> str:
    """An aware datetime (naive: taken as server time) as a data extension date, ``9/7/2020 7:31:04 AM``."""
    local = value.astimezone(SERVER_TZ) if value.tzinfo is not None else value
    hour = local.hour % 12 or 12
    half = "PM" if local.hour >= 12 else "AM"
    return f"{local.month}/{local.day}/{local.year} {hour}:{local:%M:%S} {half}"


def parse_soap_date(value: str) -> datetime:
    """A SOAP ``dateTime`` as an aware datetime in server time (without an offset it already is)."""
    parsed = datetime.fromisoformat(value.strip())
    return parsed.replace(tzinfo=SERVER_TZ) if parsed.tzinfo is None else parsed.astimezone(SERVER_TZ)


def parse_bool(value: str) -> bool:
    """A DE boolean: ``True``/``False`` in any case, or ``1``/``0``; ``ValueError`` otherwise."""
    text = value.strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise ValueError(f"not a boolean: {value!r}")
