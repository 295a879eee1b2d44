"""The message formats of the edges: bridged messages (Kinesis records, SQS ingress messages) and the acks
queue's messages, read into ``Message``s or rejected with a reason, and written. No I/O.

Message format (docs/edges.md): one JSON object per Kinesis record or SQS message,
``{"tenant": "ien", "rows": [{...}, ...]}`` or ``{"tenant": "ien", "row": {...}}``, every row value a string.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from streams.chunking import chunks

MAX_ROWS_PER_MESSAGE = 10_000


class MessageRejected(ValueError):
    """A bridged message that cannot become click rows; ``reason`` says why (it goes to dead-letter)."""

    def __init__(self, reason: str, tenant: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.tenant = tenant


@dataclass(frozen=True)
class Message:
    """A bridged (or acks-queue) message as read: a configured tenant and its rows, every value a string."""

    tenant: str
    rows: list[dict[str, str]]


def _row(value: Any, index: int) -> dict[str, str]:
    if not isinstance(value, dict):
        raise MessageRejected(f"row {index} is not a JSON object")
    row: dict[str, str] = {}
    for key, item in value.items():
        if isinstance(item, str):
            row[key] = item
        elif item is None:
            row[key] = ""
        elif isinstance(item, bool):  # SFMC's own spelling of booleans
            row[key] = "True" if item else "False"
        elif isinstance(item, int | float):
            row[key] = str(item)
        else:
            raise MessageRejected(f"row {index} field {key!r} is not a string")
    return row


def parse_message(body: bytes | str, tenants: Collection[str]) -> Message:
    """Read one bridged message; raise ``MessageRejected`` for bad JSON, missing fields or an unknown tenant.

    Row fields themselves are checked later by ingest (which dead-letters a bad row, not the message).
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MessageRejected(f"not JSON: {exc}") from None
    return read_message(data, tenants)


def read_message(data: Any, tenants: Collection[str]) -> Message:
    """A decoded message, ``{"tenant": ..., "rows": [...]}`` or ``{"tenant": ..., "row": {...}}``, checked as
    ``parse_message`` checks it: 1 to ``MAX_ROWS_PER_MESSAGE`` rows of string values (numbers, booleans and
    null spelt as SFMC does), a configured tenant; ``MessageRejected`` otherwise."""
    if not isinstance(data, dict):
        raise MessageRejected("not a JSON object")
    tenant = data.get("tenant")
    if not isinstance(tenant, str) or not tenant:
        raise MessageRejected("missing tenant")
    if tenant not in tenants:
        raise MessageRejected(f"tenant {tenant!r} is not a configured business unit", tenant)
    if "rows" in data:
        rows = data["rows"]
        if not isinstance(rows, list):
            raise MessageRejected("rows is not a list", tenant)
    elif "row" in data:
        rows = [data["row"]]
    else:
        raise MessageRejected("missing rows (or row)", tenant)
    if not rows:
        raise MessageRejected("rows is empty", tenant)
    if len(rows) > MAX_ROWS_PER_MESSAGE:
        raise MessageRejected(f"more than {MAX_ROWS_PER_MESSAGE} rows", tenant)
    try:
        return Message(tenant, [_row(row, index) for index, row in enumerate(rows)])
    except MessageRejected as exc:
        raise MessageRejected(exc.reason, tenant) from None


Rejected = tuple[MessageRejected, bytes | str, dict[str, Any]]
"""A poison message: why, its body, and where it came from (stream/shard/sequence, queue/message id)."""


def parse_all(items: Iterable[tuple[bytes | str, dict[str, Any]]], tenants: Collection[str],
              parse: Callable[[bytes | str, Collection[str]], Message] | None = None,
              ) -> tuple[list[Message], list[Rejected]]:
    """Parse (body, where) pairs into the good messages and the rejected ones."""
    parse = parse or parse_message
    messages: list[Message] = []
    rejected: list[Rejected] = []
    for body, where in items:
        try:
            messages.append(parse(body, tenants))
        except MessageRejected as exc:
            rejected.append((exc, body, where))
    return messages, rejected


def preview(body: bytes | str, limit: int = 2000) -> str:
    """The start of a message body for a dead letter, as text: at most ``limit`` characters, then ``…``."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return text if len(text) <= limit else text[:limit] + "…"


def group_messages(messages: Iterable[Message]) -> dict[str, list[dict[str, str]]]:
    """Rows of many messages by tenant, in arrival order (``append_click_rows`` splits them by partition)."""
    groups: dict[str, list[dict[str, str]]] = defaultdict(list)
    for message in messages:
        groups[message.tenant].extend(message.rows)
    return dict(groups)


# --- the acks queue -------------------------------------------------------------------------------

ACK_ROWS_PER_MESSAGE = 50


def ack_messages(tenant: str, status: str, rows: Sequence[dict[str, str]], reason: str = "") -> list[bytes]:
    """The JSON bodies (``{tenant, status, reason, rows}``) that carry ``rows`` (their key values) on the acks
    queue, at most ``ACK_ROWS_PER_MESSAGE`` (50) rows each."""
    return [orjson.dumps({"tenant": tenant, "status": status, "reason": reason, "rows": list(chunk)})
            for chunk in chunks(rows, ACK_ROWS_PER_MESSAGE)]


def parse_ack_message(body: bytes | str, tenants: Collection[str]) -> Message:
    """An acks-queue message: the same shape as an ingress message (``tenant``, ``rows``); rows need an ID.
    Raises ``MessageRejected`` as ``parse_message`` does, and for a row without one."""
    message = parse_message(body, tenants)
    if not all((row.get("ID") or "").strip() for row in message.rows):
        raise MessageRejected("a row has no ID", message.tenant)
    return message


