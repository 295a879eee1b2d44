"""Click-log rows already handled, and what became of each.

Rows stay in the click-log DE until marked processed, so every poll reads them again; a repeat must not
become a new click event. A repeat read more than ``reack_after_seconds`` after the row was handled (its
mark was lost, or the DE was reset) is acknowledged again instead, so it is not read forever. Entries
expire: a row is remembered for one to two ``seen_rows_ttl_seconds`` windows.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from enum import IntEnum

from streams.app import app, settings
from streams.clicks import KEY_FIELDS

_ttl = timedelta(seconds=settings.seen_rows_ttl_seconds)


class Outcome(IntEnum):
    EVENT = 1
    SKIPPED = 2
    BAD = 3


# Keyed by the row's tenant and primary key, written while handling the row's ``click-rows`` record
# (key ``{tenant}:{JobID}``, one record at a time), so a row's repeats find it on the same partition.
seen_rows = app.Table("seen-rows", default=list, help="click-log rows handled: [outcome, when]").tumbling(
    _ttl, expires=2 * _ttl
).relative_to_now()


def row_key(tenant: str, row: Mapping[str, str]) -> str:
    return tenant + ":" + "|".join(row.get(name, "") for name in KEY_FIELDS)


def lookup(key: str) -> tuple[Outcome, float] | None:
    """What became of the row and when, if it was handled within the TTL."""
    window = seen_rows[key]
    value = window.now() or window.delta(_ttl)
    return (Outcome(value[0]), value[1]) if value else None


def remember(key: str, outcome: Outcome, at: float) -> None:
    seen_rows[key] = [int(outcome), at]
