"""A timer per business unit polls its click-log DE and appends the rows to ``click-rows``.

The rows of a page go out as one record per partition of their sends (``streams.topics``), so a row's
repeats land on the same partition. Only the leader worker polls.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from streams.app import app, settings
from streams.marketing_cloud import MarketingCloudError, parse_de_date
from streams.resources import marketing_cloud
from streams.settings import BusinessUnit
from streams.tables.seen_rows import RowIndex, row_key
from streams.topics import append_click_rows

log = logging.getLogger(__name__)

poll_status: dict[str, dict[str, Any]] = {}
"""Per tenant: last poll start and end, rows read by the last poll and in total, last error."""


class PollState:
    """What the leader remembers between polls of one BU's click log.

    Rows stay in the DE until marked processed, so a poll over the whole lookback reads every row still in
    flight again. Most polls therefore read only back to ``poll_overlap_seconds`` before the newest click
    seen; a sweep over the whole lookback runs every ``reack_after_seconds`` (and first) to find rows that
    arrived late or whose mark was lost. Rows appended within ``reack_after_seconds`` are not appended again
    (the seen-rows table catches what gets past this, on any worker); at most ``seen_rows_index_size`` of
    them are remembered."""

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        self.appended = RowIndex(settings.seen_rows_index_size)
        self.newest: datetime | None = None
        self.last_sweep = -math.inf

    def since(self, now: float) -> datetime:
        floor = datetime.fromtimestamp(now - settings.lookback_seconds, UTC)
        if self.newest is None or now - self.last_sweep >= settings.reack_after_seconds:
            self.last_sweep = now
            self.appended.forget_until(now - settings.reack_after_seconds)
            return floor
        return max(floor, self.newest - timedelta(seconds=settings.poll_overlap_seconds))

    def new(self, rows: list[dict[str, str]], now: float) -> list[dict[str, str]]:
        """The rows not appended lately; notes the newest click time."""
        fresh = []
        appended = self.appended
        for row in rows:
            key = row_key(self.tenant, row)
            seen = appended.get(key)
            if seen is None or now - seen[1] >= settings.reack_after_seconds:
                appended.put(key, 0, now)
                fresh.append(row)
            with contextlib.suppress(ValueError):
                clicked = parse_de_date(row.get("EventDate") or "")
                self.newest = clicked if self.newest is None else max(self.newest, clicked)
        return fresh


_state: dict[str, PollState] = {}


async def poll(unit: BusinessUnit) -> int:
    """Read the ready rows (see ``PollState``) and append new ones to ``click-rows``; return rows read."""
    status = poll_status.setdefault(unit.tenant, {"rows_total": 0})
    status["last_poll_started"] = now = time.time()
    state = _state.setdefault(unit.tenant, PollState(unit.tenant))
    since = state.since(now)
    count = 0
    try:
        async for page in marketing_cloud(unit.tenant).click_rows(since, settings.page_size):
            read_at = time.time()
            await append_click_rows(unit.tenant, state.new(page, read_at), read_at=read_at, source="sfmc")
            count += len(page)
        status["last_error"] = None
    except MarketingCloudError as exc:
        status["last_error"] = str(exc)
        log.warning("polling the click log of %s failed after %d rows: %s", unit.tenant, count, exc)
    status.update(last_poll_finished=time.time(), rows_last_poll=count, rows_total=status["rows_total"] + count,
                  last_poll_since=since.isoformat())
    return count


def _poller(unit: BusinessUnit) -> None:
    # a one-second timer that polls when due: the first poll comes as soon as a leader is known,
    # not a whole interval after start (a faust timer first sleeps its interval)
    async def poll_when_due() -> None:
        finished = poll_status.get(unit.tenant, {}).get("last_poll_finished", 0.0)
        if time.time() - finished >= settings.poll_interval:
            await poll(unit)

    app.timer(1.0, on_leader=True, name=f"poll-{unit.tenant}")(poll_when_due)


if settings.poll_click_log:
    for _unit in settings.business_units:
        _poller(_unit)
