"""A timer per business unit polls its click-log DE and appends the rows to ``click-rows``.

Rows of one send are sent as one record keyed ``{tenant}:{JobID}``, so a row's repeats land on the
same partition. Only the leader worker polls.
"""

from __future__ import annotations

import logging
import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from streams.app import app, settings
from streams.edges import rows_by_send
from streams.marketing_cloud import MarketingCloudError
from streams.resources import marketing_cloud
from streams.settings import BusinessUnit
from streams.tables.seen_rows import row_key
from streams.topics import append_click_rows

log = logging.getLogger(__name__)

poll_status: dict[str, dict[str, Any]] = {}
"""Per tenant: last poll start and end, rows read by the last poll and in total, last error."""


class RecentRows:
    """Rows this worker appended within ``reack_after_seconds``. Until the pipeline marks them, every poll
    reads them again; they are not appended again (the seen-rows table catches the rest, on any worker)."""

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant
        self.appended: dict[str, float] = {}

    def new(self, rows: list[dict[str, str]], now: float) -> list[dict[str, str]]:
        fresh = []
        for row in rows:
            key = row_key(self.tenant, row)
            if now - self.appended.get(key, -math.inf) >= settings.reack_after_seconds:
                self.appended[key] = now
                fresh.append(row)
        return fresh

    def forget_old(self, now: float) -> None:
        self.appended = {k: t for k, t in self.appended.items() if now - t < settings.reack_after_seconds}


_recent: dict[str, RecentRows] = {}


async def poll(unit: BusinessUnit) -> int:
    """Read every ready row newer than the lookback and append it to ``click-rows``; return the count."""
    status = poll_status.setdefault(unit.tenant, {"rows_total": 0})
    status["last_poll_started"] = time.time()
    since = datetime.now(UTC) - timedelta(seconds=settings.lookback_seconds)
    recent = _recent.setdefault(unit.tenant, RecentRows(unit.tenant))
    recent.forget_old(time.time())
    count = 0
    try:
        async for page in marketing_cloud(unit.tenant).click_rows(since, settings.page_size):
            read_at = time.time()
            for job_id, rows in rows_by_send(recent.new(page, read_at)).items():
                await append_click_rows(unit.tenant, job_id, rows, read_at=read_at, source="sfmc")
            count += len(page)
        status["last_error"] = None
    except MarketingCloudError as exc:
        status["last_error"] = str(exc)
        log.warning("polling the click log of %s failed after %d rows: %s", unit.tenant, count, exc)
    status.update(last_poll_finished=time.time(), rows_last_poll=count, rows_total=status["rows_total"] + count)
    return count


def _poller(unit: BusinessUnit) -> None:
    # a one-second timer that polls when due: the first poll comes as soon as a leader is known,
    # not a whole interval after start (a faust timer first sleeps its interval)
    async def poll_when_due() -> None:
        finished = poll_status.get(unit.tenant, {}).get("last_poll_finished", 0.0)
        if time.time() - finished >= settings.poll_interval:
            await poll(unit)

    app.timer(1.0, on_leader=True, name=f"poll-{unit.tenant}")(poll_when_due)


for _unit in settings.business_units:
    _poller(_unit)
