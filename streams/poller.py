"""The SFMC poller: each business unit's click-log DE read page by page into ``click-rows`` (``Poller``).

The rows of a page go out as one record per partition of their sends (``streams.topics``), so a row's
repeats land on the same partition. Only the leader worker polls (a timer per BU, ``streams.topology``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from streams import metrics
from streams.marketing_cloud import MarketingCloudClient, MarketingCloudError, parse_de_date
from streams.settings import Settings
from streams.tables.row_index import RowIndex
from streams.tables.seen_rows import row_key
from streams.topics import Topics

log = logging.getLogger(__name__)


class PollState:
    """What the leader remembers between polls of one BU's click log.

    Rows stay in the DE until marked processed, so a poll over the whole lookback reads every row still in
    flight again. Most polls therefore read only back to ``poll_overlap_seconds`` before the newest click
    seen; a sweep over the whole lookback runs every ``reack_after_seconds`` (and first) to find rows that
    arrived late or whose mark was lost. Rows appended within ``reack_after_seconds`` are not appended again
    (the seen-rows table catches what gets past this, on any worker): ``appended`` remembers them (shared by
    the BUs, whose row keys start with their tenant)."""

    def __init__(self, tenant: str, settings: Settings, appended: RowIndex) -> None:
        self.tenant = tenant
        self.settings = settings
        self.appended = appended
        self.newest: datetime | None = None
        self.last_sweep = -math.inf

    def since(self, now: float) -> datetime:
        """Where the poll at ``now`` (epoch seconds) reads from, a UTC datetime: the lookback's start on a sweep,
        else ``poll_overlap_seconds`` before the newest click seen (never before the lookback's start)."""
        settings = self.settings
        floor = datetime.fromtimestamp(now - settings.lookback_seconds, UTC)
        if self.newest is None or now - self.last_sweep >= settings.reack_after_seconds:
            self.last_sweep = now
            return floor
        return max(floor, self.newest - timedelta(seconds=settings.poll_overlap_seconds))

    def new(self, rows: list[dict[str, str]], now: float) -> list[dict[str, str]]:
        """The rows not appended within ``reack_after_seconds`` before ``now`` (epoch seconds), noted as appended
        at ``now``; notes the newest click time (``EventDate``) too."""
        keys = [row_key(self.tenant, row) for row in rows]
        reack_after = self.settings.reack_after_seconds
        fresh = []
        noted: set[str] = set()  # a row twice in the page goes once
        for key, row, seen in zip(keys, rows, self.appended.get(keys), strict=True):
            if key not in noted and (seen is None or now - seen[1] >= reack_after):
                noted.add(key)
                fresh.append(row)
            with contextlib.suppress(ValueError):
                clicked = parse_de_date(row.get("EventDate") or "")
                self.newest = clicked if self.newest is None else max(self.newest, clicked)
        self.appended.put(((key, 0) for key in noted), now)
        return fresh


class Poller:
    """Polls the click logs of ``settings``' business units (``client(tenant)``: its SFMC client) into
    ``topics``' ``click-rows``. ``status[tenant]``: the last poll's start and end (epoch seconds) and duration
    (seconds), rows read by it and in total since this process started, its error (None after one that succeeded),
    and where it read from."""

    def __init__(self, settings: Settings, client: Callable[[str], MarketingCloudClient], topics: Topics) -> None:
        self.settings = settings
        self.client = client
        self.topics = topics
        self.status: dict[str, dict[str, Any]] = {}
        appended = RowIndex(settings.data_dir / "row-index" / "appended", settings.reack_after_seconds)
        self._state = {unit.tenant: PollState(unit.tenant, settings, appended) for unit in settings.business_units}

    def due(self, tenant: str, now: float) -> bool:
        """Whether ``poll_interval`` seconds have passed by ``now`` (epoch seconds) since the tenant's last poll
        finished (or it never polled)."""
        finished = self.status.get(tenant, {}).get("last_poll_finished", 0.0)
        return bool(now - finished >= self.settings.poll_interval)

    async def poll(self, tenant: str) -> int:
        """Read the ready rows (see ``PollState``) and append new ones to ``click-rows``; return rows read, new or
        not. An SFMC failure ends the poll (logged, and kept in ``status``); rows already appended stay appended."""
        status = self.status.setdefault(tenant, {"rows_total": 0})
        status["last_poll_started"] = now = time.time()
        state = self._state[tenant]
        since = state.since(now)
        count = 0
        try:
            async for page in self.client(tenant).click_rows(since, self.settings.page_size):
                read_at = time.time()
                await self.topics.append_click_rows(tenant, state.new(page, read_at), read_at=read_at, source="sfmc")
                metrics.rows_read.labels(tenant=tenant, source="sfmc").inc(len(page))
                count += len(page)
            status["last_error"] = None
        except MarketingCloudError as exc:
            status["last_error"] = str(exc)
            log.warning("polling the click log of %s failed after %d rows: %s", tenant, count, exc)
        finished = time.time()
        status.update(last_poll_finished=finished, last_poll_seconds=round(finished - now, 3), rows_last_poll=count,
                      rows_total=status["rows_total"] + count, last_poll_since=since.isoformat())
        return count
