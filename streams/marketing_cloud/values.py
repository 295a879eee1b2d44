"""Casting SFMC string values (pure functions).

Every data extension value is a string. Dates are SFMC server time, a fixed UTC-06:00 that ignores
daylight saving: DE dates look like ``9/7/2020 7:31:04 AM``; SOAP object dates are ISO without offset
(``2020-09-04T08:35:29.92``); REST asset dates may carry an explicit offset.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

SERVER_TZ = timezone(timedelta(hours=-6))

_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})


_DE_DATE = re.compile(
    r"\s*([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})\s+([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})\s+([AaPp][Mm])\s*"
)


def parse_de_date(value: str) -> datetime:
    """``9/7/2020 7:31:04 AM`` → aware datetime in server time; ``ValueError`` when it is not one.

    A regular expression rather than ``strptime`` with ``%m/%d/%Y %I:%M:%S %p``: about 3x faster, and this
    runs once per click row."""
    match = _DE_DATE.fullmatch(value)
    if match is None:
        raise ValueError(f"not a date like 9/7/2020 7:31:04 AM: {value[:40]!r}")
    month, day, year, hour, minute, second = (int(part) for part in match.groups()[:6])
    if not 1 <= hour <= 12:
        raise ValueError(f"hour out of range in {value[:40]!r}")
    hour = hour % 12 + (12 if match[7].upper() == "PM" else 0)
    return datetime(year, month, day, hour, minute, second, tzinfo=SERVER_TZ)


def format_de_date(value: datetime) -> str:
    """The inverse of :func:`parse_de_date` (naive datetimes are taken as server time)."""
    if value.tzinfo is not None:
        value = value.astimezone(SERVER_TZ)
    hour = value.hour % 12 or 12
    suffix = "AM" if value.hour < 12 else "PM"
    return f"{value.month}/{value.day}/{value.year} {hour}:{value.minute:02d}:{value.second:02d} {suffix}"


def parse_soap_date(value: str) -> datetime:
    """ISO date; without an offset it is server time; with one it is converted to server time."""
    parsed = datetime.fromisoformat(value.strip())
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=SERVER_TZ)
    return parsed.astimezone(SERVER_TZ)


def format_soap_date(value: datetime) -> str:
    """An aware datetime as server-time ISO with its offset, as a SOAP ``DateValue``."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=SERVER_TZ)
    return value.astimezone(SERVER_TZ).isoformat()


def parse_bool(value: str) -> bool:
    """``True``/``False``/``true``/``false``/``1``/``0`` → bool; anything else is a ``ValueError``."""
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"not a boolean: {value!r}")


def parse_int(value: str) -> int:
    """The integer the text holds, surrounding whitespace ignored; ``ValueError`` when it holds none."""
    return int(value.strip())


def parse_optional_int(value: str | None) -> int | None:
    """Empty or absent → ``None``; otherwise an int (``ValueError`` when it is not one)."""
    if value is None or not value.strip():
        return None
    return parse_int(value)
