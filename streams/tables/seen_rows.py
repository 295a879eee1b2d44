"""Row IDs already turned into events: rows stay in the click-log DE until marked processed, so every
poll reads them again. Entries expire; a row is remembered for one to two TTL windows."""

from __future__ import annotations

from datetime import timedelta

from streams.app import app, settings

_ttl = timedelta(seconds=settings.seen_rows_ttl_seconds)

# Keyed ``{tenant}:{row ID}``, written while handling the row's ``click-rows`` message (key
# ``{tenant}:{JobID}``), so a row's repeats find it on the same partition.
seen_rows = app.Table("seen-rows", default=int, help="row IDs seen, by tenant").tumbling(
    _ttl, expires=2 * _ttl
).relative_to_now()


def seen(key: str) -> bool:
    window = seen_rows[key]
    return bool(window.now() or window.delta(_ttl))


def mark_seen(key: str) -> None:
    seen_rows[key] = 1
