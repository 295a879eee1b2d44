"""Emulator state: the dataset per business unit, the run-time knobs, and call counts."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .objects import CLICK_LOG_COLUMNS, ROW_KEYS, TYPES


@dataclass
class Config:
    """Knobs; change them with CLI flags or ``POST /_emulator/config`` (a JSON object of these names)."""

    latency_ms: dict[str, float] = field(default_factory=lambda: {"soap": 0.0, "rest": 0.0, "token": 0.0})
    token_lifetime: float = 1080.0
    rate_429: float = 0.0
    """Share of REST calls answered 429 with ``Retry-After: {retry_after}``."""
    rate_500: float = 0.0
    """Share of SOAP and REST calls answered 500 (SOAP: a Server fault, as SFMC throttles)."""
    retry_after: float = 1.0
    fail_next_429: int = 0
    """The next N REST calls answer 429 (deterministic, for tests)."""
    fail_next_500: int = 0
    """The next N SOAP or REST calls answer 500."""
    reject_row_ids: list[str] = field(default_factory=list)
    """Row IDs whose rowset update answers errorcode 10006 (on top of each unit's ``reject_row_ids``)."""
    page_size: int = 2500
    seed: int | None = None

    def update(self, changes: dict[str, Any]) -> None:
        known = set(asdict(self))
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown knobs: {sorted(unknown)}")
        for name, value in changes.items():
            if name == "latency_ms":
                self.latency_ms = {**self.latency_ms, **{k: float(v) for k, v in value.items()}}
            elif name == "reject_row_ids":
                self.reject_row_ids = [str(v) for v in value]
            elif name == "seed":
                self.seed = None if value is None else int(value)
            else:
                setattr(self, name, type(getattr(self, name))(value))
        if not 1 <= self.page_size <= 2500:
            raise ValueError("page_size must be 1..2500")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def row_key(values: dict[str, str]) -> tuple[str, ...]:
    return tuple(values.get(name, "") for name in ROW_KEYS)


class Unit:
    """One business unit's data; click-log rows change when marked processed."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.tenant: str = data["tenant"]
        self.client_id: str = data["client_id"]
        self.client_secret: str = data["client_secret"]
        self.mid: int | None = data.get("mid")
        self.click_log_key: str = data["click_log_key"]
        self.click_log_object_id: str = data["click_log_object_id"]
        self.reject_row_ids: set[str] = {str(i) for i in data.get("reject_row_ids", [])}
        self.rows: list[dict[str, str]] = [self._row(row) for row in data.get("rows", [])]
        self.rows_by_key = {row_key(row): row for row in self.rows}
        self.objects: dict[str, list[dict[str, Any]]] = {
            "Send": list(data.get("sends", [])),
            "Subscriber": list(data.get("subscribers", [])),
            "Email": list(data.get("emails", [])),
            "DataFolder": list(data.get("folders", [])),
        }
        self.folders = {str(folder["ID"]): folder for folder in self.objects["DataFolder"]}
        assert set(self.objects) < set(TYPES)

    @staticmethod
    def _row(row: dict[str, Any]) -> dict[str, str]:
        values = {name: str(row.get(name, "")) for name in CLICK_LOG_COLUMNS}
        values["Processed"] = row.get("Processed") or "False"
        values["Ready"] = "False" if values["Processed"].lower() in ("true", "1") else "True"
        return values

    def mark(self, keys: dict[str, str], values: dict[str, Any]) -> dict[str, str]:
        """Upsert one row; ``Processed`` true makes ``Ready`` false (the click-log filter skips it)."""
        row = self.rows_by_key.get(row_key(keys))
        if row is None:
            row = self._row(keys)
            self.rows.append(row)
            self.rows_by_key[row_key(row)] = row
        for name, value in values.items():
            row[name] = str(value).capitalize() if isinstance(value, bool) else str(value)
        processed = row.get("Processed", "False").lower() in ("true", "1")
        row["Ready"] = "False" if processed else "True"
        return row


class Counts:
    """Call counts by type, per business unit (client id) and in total; and when each entity was returned."""

    def __init__(self) -> None:
        self.units: dict[str, Counter[str]] = {}
        self.total: Counter[str] = Counter()
        self.returned_at: dict[str, dict[str, list[float]]] = {}
        """Per client id: ``{type}*{id}`` → the times (epoch seconds) a reply carried that entity."""

    def add(self, client_id: str | None, kind: str, n: int = 1) -> None:
        self.total[kind] += n
        if client_id is not None:
            self.units.setdefault(client_id, Counter())[kind] += n

    def returned(self, client_id: str, kind: str, ids: Iterable[str]) -> None:
        """Count the entities of type ``kind`` one reply returned (``returned:{kind}``) and note when."""
        now, times, count = time.time(), self.returned_at.setdefault(client_id, {}), 0
        for ident in ids:
            times.setdefault(f"{kind}*{ident}", []).append(now)
            count += 1
        self.add(client_id, f"returned:{kind}", count)

    def reset(self) -> None:
        self.units.clear()
        self.total.clear()
        self.returned_at.clear()

    def to_json(self) -> dict[str, Any]:
        return {"total": dict(self.total), "units": {cid: dict(c) for cid, c in self.units.items()}}


def load_dataset(path: str | Path) -> dict[str, Any]:
    with open(path, "rb") as handle:
        data: dict[str, Any] = json.load(handle)
    return data
