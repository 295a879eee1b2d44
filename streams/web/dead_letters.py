"""Dead letters an operator can act on: the ``dead-letter`` topic read into an index grouped by stage, reason and
tenant, with counts, the newest few examples of each group and the command that requeues a stage.

``DeadLetterIndex`` is the grouping (pure); ``DeadLetterTail`` keeps it up to date from the topic on request, each
request reading only what was appended since the last (at most ``READ_PER_REFRESH`` letters), so a page or a
``leads-sync status`` never reads the whole topic. Examples carry what identifies a letter — its key, tenant and
time, and the row keys, entity or message position of its source — never a message body or a row's other fields.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from streams.marketing_cloud.records import ROW_KEYS

EXAMPLES = 5
"""Newest examples kept per group."""
MAX_GROUPS = 200
"""Groups kept at most; the letters of any further reason count under ``OTHER_REASONS`` of their stage."""
OTHER_REASONS = "(other reasons)"
MAX_REASON = 300
"""Characters of a reason kept (a longer one is cut, with …)."""
READ_PER_REFRESH = 20_000
"""Letters read at most per refresh: an index far behind a large topic catches up over several requests."""
CACHE_SECONDS = 2.0
"""A refresh within this many seconds of the last one reads nothing."""
WHERE_FIELDS = ("stream", "shard", "sequence", "queue", "message_id")
"""The position fields of a Kinesis or SQS letter's source that an example shows (its body never)."""


def requeue_command(stage: str) -> str:
    """The command that sends the dead letters of ``stage`` back into the pipeline."""
    return f"leads-sync replay-dead-letters --stage {stage}"


def identity(source: Any) -> dict[str, Any]:
    """What of a letter's ``source`` an example shows: row keys (``ROW_KEYS``, of a row, an ack's ``keys`` or a
    click's ``event.keys``), the ``send`` and ``entity``, and a bridged message's position; nothing else."""
    if not isinstance(source, dict):
        return {}
    shown: dict[str, Any] = {}
    event = source.get("event")
    for row in (source, source.get("keys"), event.get("keys") if isinstance(event, dict) else None):
        if isinstance(row, dict) and any(name in row for name in ROW_KEYS):
            shown["keys"] = {name: row[name] for name in ROW_KEYS if name in row}
            break
    for name in ("send", "entity", *WHERE_FIELDS):
        if isinstance(source.get(name), str | int):
            shown[name] = source[name]
    return shown


@dataclass
class Group:
    """The letters of one stage, reason and tenant: ``count``; ``minutes``: letters per minute (epoch seconds of the
    minute's start); ``examples``: the newest, newest last."""

    stage: str
    reason: str
    tenant: str
    count: int = 0
    minutes: Counter[int] = field(default_factory=Counter)
    examples: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=EXAMPLES))

    def within(self, since: float | None, until: float | None) -> int:
        """Letters of minutes that start in ``[since, until]`` (epoch seconds; a bound of None is open): to the
        minute."""
        if since is None and until is None:
            return self.count
        low = -1.0 if since is None else since // 60 * 60
        high = float("inf") if until is None else until
        return sum(count for minute, count in self.minutes.items() if low <= minute <= high)


class DeadLetterIndex:
    """Dead letters grouped by (stage, reason, tenant); at most ``MAX_GROUPS`` groups."""

    def __init__(self) -> None:
        self.groups: dict[tuple[str, str, str], Group] = {}
        self.letters = 0
        """Letters added (unreadable records included)."""
        self.newest_at: float | None = None
        """Epoch seconds of the newest letter added, by its ``at``."""

    def add(self, key: str, letter: Any) -> None:
        """Add one letter (a ``DeadLetter`` as decoded JSON; anything else counts as stage ``unreadable``) with its
        record key."""
        self.letters += 1
        if not isinstance(letter, dict):
            letter = {"stage": "unreadable", "reason": "not a JSON object", "tenant": "", "source": {}, "at": 0}
        stage, tenant = str(letter.get("stage") or "unknown"), str(letter.get("tenant") or "")
        reason = str(letter.get("reason") or "")
        reason = reason if len(reason) <= MAX_REASON else reason[:MAX_REASON] + "…"
        at = letter.get("at") if isinstance(letter.get("at"), int | float) else 0.0
        group = self.groups.get((stage, reason, tenant))
        if group is None:
            if len(self.groups) >= MAX_GROUPS:
                reason = OTHER_REASONS
            group = self.groups.setdefault((stage, reason, tenant), Group(stage, reason, tenant))
        group.count += 1
        group.minutes[int(at // 60 * 60)] += 1
        group.examples.append({"key": key, "tenant": tenant, "at": at, **identity(letter.get("source"))})
        self.newest_at = at if self.newest_at is None else max(self.newest_at, at)

    def report(self, *, stage: str | None = None, tenant: str | None = None, since: float | None = None,
               until: float | None = None, examples: int = EXAMPLES) -> dict[str, Any]:
        """The letters that match (``stage``, ``tenant``; ``since`` and ``until`` in epoch seconds, to the minute),
        ``{"total", "newest_at", "stages": [{"stage", "count", "requeue": command, "reasons": [{"reason", "count",
        "tenants": {tenant: count}, "last_at", "examples": [newest first]}]}]}``, the largest first."""
        stages: dict[str, dict[str, dict[str, Any]]] = {}
        for group in self.groups.values():
            if (stage and group.stage != stage) or (tenant is not None and group.tenant != tenant):
                continue
            count = group.within(since, until)
            if not count:
                continue
            shown = [example for example in reversed(group.examples)
                     if (since is None or example["at"] >= since) and (until is None or example["at"] <= until)]
            entry = stages.setdefault(group.stage, {}).setdefault(
                group.reason, {"reason": group.reason, "count": 0, "tenants": {}, "last_at": None, "examples": []})
            entry["count"] += count
            entry["tenants"][group.tenant] = entry["tenants"].get(group.tenant, 0) + count
            entry["examples"] = sorted([*entry["examples"], *shown], key=lambda e: -e["at"])[:examples]
            if entry["examples"]:
                entry["last_at"] = entry["examples"][0]["at"]
        report = [{"stage": name, "count": sum(r["count"] for r in reasons.values()), "requeue": requeue_command(name),
                   "reasons": sorted(reasons.values(), key=lambda r: -r["count"])}
                  for name, reasons in stages.items()]
        report.sort(key=lambda s: -s["count"])
        return {"total": sum(s["count"] for s in report), "newest_at": self.newest_at, "stages": report}


class DeadLetterTail:
    """Keeps a ``DeadLetterIndex`` of ``topic`` (of ``partitions`` partitions) up to date: ``refresh()`` reads what
    was appended since the last call, at most ``READ_PER_REFRESH`` letters, with a group-less consumer of
    ``client_options`` (aiokafka's)."""

    def __init__(self, topic: str, partitions: int, client_options: Mapping[str, Any]) -> None:
        self.topic = topic
        self.partitions = partitions
        self.client_options = dict(client_options)
        self.index = DeadLetterIndex()
        self.behind = 0
        """Letters on the topic past what the index holds, as of the last refresh."""
        self._consumer: AIOKafkaConsumer | None = None
        self._positions: dict[TopicPartition, int] = {}
        self._lock = asyncio.Lock()
        self._refreshed = 0.0

    async def refresh(self) -> DeadLetterIndex:
        """The index, after reading what is new on the topic (none of it within ``CACHE_SECONDS`` of the last
        refresh). Raises what aiokafka raises when Kafka is unreachable; the index keeps what it had."""
        async with self._lock:
            if time.monotonic() - self._refreshed < CACHE_SECONDS:
                return self.index
            try:
                await self._read()
            except BaseException:
                await self.close()  # reopened, from the positions reached, on the next refresh
                raise
            self._refreshed = time.monotonic()
            return self.index

    async def _read(self) -> None:
        consumer = await self._open()
        tps = [TopicPartition(self.topic, partition) for partition in range(self.partitions)]
        consumer.assign(tps)
        starts = await consumer.beginning_offsets(tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, max(self._positions.get(tp, 0), starts[tp]))
        budget = READ_PER_REFRESH
        pending = {tp for tp in tps if max(self._positions.get(tp, 0), starts[tp]) < ends[tp]}
        while pending and budget > 0:
            fetched = await consumer.getmany(*pending, timeout_ms=1000, max_records=min(budget, 5000))
            for tp, messages in fetched.items():
                for message in messages:
                    if message.offset < ends[tp]:
                        self.index.add(message.key.decode("utf-8", "replace") if message.key else "",
                                       _json(message.value))
                        budget -= 1
                        self._positions[tp] = message.offset + 1
            if not fetched:  # nothing more within a second: what is left comes with a later refresh
                break
            pending = {tp for tp in pending if self._positions.get(tp, 0) < ends[tp]}
        self.behind = sum(max(0, ends[tp] - max(self._positions.get(tp, 0), starts[tp])) for tp in tps)

    async def _open(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, **self.client_options)
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def close(self) -> None:
        """Stop the consumer (the next refresh opens another, from the positions reached)."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()


def _json(value: bytes | None) -> Any:
    try:
        return orjson.loads(value) if value else None
    except orjson.JSONDecodeError:
        return None
