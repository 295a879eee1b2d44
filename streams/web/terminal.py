"""``leads-sync status``: a worker's ``/status``, ``/dead-letters`` and ``/rates`` fetched from its web port and
printed as terminal tables (``render``), or as one JSON document for scripts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp


async def fetch(url: str, token: str | None, *, timeout: float = 10.0) -> dict[str, Any]:
    """``{"status": ..., "dead_letters": ..., "rates": ...}`` from the worker at ``url`` (``http://host:port``),
    each request within ``timeout`` seconds. Raises ``aiohttp.ClientResponseError`` on a refusal (401: the token
    is missing or wrong), another ``aiohttp.ClientError`` or ``TimeoutError`` when the worker does not answer."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(url.rstrip("/"), headers=headers,
                                     timeout=aiohttp.ClientTimeout(total=timeout)) as client:
        replies = {}
        for name, path in (("status", "/status"), ("dead_letters", "/dead-letters"), ("rates", "/rates")):
            async with client.get(path, raise_for_status=True) as reply:
                replies[name] = await reply.json()
        return replies


def when(at: float | None) -> str:
    """Epoch seconds as ``2026-12-01 21:30:05Z``; ``never`` for None or 0."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%SZ") if at else "never"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """``rows`` under ``headers`` in aligned columns (the first left-aligned, the others right-aligned)."""
    cells = [[str(h) for h in headers], *[["" if cell is None else str(cell) for cell in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))
             for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _rate(points: Sequence[Sequence[float]]) -> str:
    return f"{points[-1][1]:,.1f}" if points else "-"


def render(replies: dict[str, Any]) -> str:
    """The replies of ``fetch`` as text: the worker, business units, rates now and over the window, topics, and the
    dead letters grouped by stage and reason with the command that requeues each stage."""
    status, letters, rates = replies["status"], replies["dead_letters"], replies["rates"]
    worker = status.get("worker") or {}
    out = [f"worker {worker.get('url')} ({'leader' if worker.get('leader') else 'not the leader'}), "
           f"at {when(status.get('generated_at'))}"]
    units = status.get("business_units") or {}
    out += ["", "Business units", table(
        ["tenant", "rows read", "events", "skipped", "bad", "refused", "marked", "last poll", "took s", "error",
         "tokens"],
        [[tenant, u.get("rows_read"), u.get("events"), u.get("skipped"), u.get("bad"), u.get("refused"),
          u.get("marked"), when(u.get("last_poll_finished")), u.get("last_poll_seconds"), u.get("last_error") or "",
          (u.get("token") or {}).get("state")] for tenant, u in units.items()])]
    series = rates.get("series") or {}
    out += ["", f"Rates per second (last sample; {int(rates.get('window', 0) // 60)} min kept)", table(
        ["series", "now", "peak"],
        [[name, _rate(points), f"{max((p[1] for p in points), default=0):,.1f}"] for name, points in series.items()])]
    topics = status.get("topics") or {}
    out += ["", "Topics", table(
        ["topic", "records", "lag", "newest letter"],
        [[name, topic.get("records"), topic.get("lag", "not consumed"),
          when(topic.get("newest_at")) if "newest_at" in topic else ""] for name, topic in topics.items()])]
    if status.get("kafka_error"):
        out.append(f"Kafka: {status['kafka_error']}")
    out += ["", f"Dead letters: {letters.get('total', 0)} (newest {when(letters.get('newest_at'))})"]
    for stage in letters.get("stages") or []:
        out += ["", f"{stage['stage']}: {stage['count']}   requeue: {stage['requeue']}", table(
            ["reason", "letters", "tenants", "newest"],
            [[reason["reason"], reason["count"], ", ".join(f"{t or '-'}: {n}" for t, n in reason["tenants"].items()),
              when(reason.get("last_at"))] for reason in stage["reasons"]])]
    return "\n".join(out)
