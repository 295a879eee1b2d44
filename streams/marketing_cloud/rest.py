"""REST bodies and replies: Content Builder asset query and data-event rowsets (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .errors import MalformedResponse
from .records import RowFailure, row_keys

ASSET_FIELDS = ("name", "views", "category", "createdDate", "modifiedDate", "data")
KEY_MISMATCH = 10006
"""SFMC errorcode for a row whose keys do not match the data extension's primary key."""


def asset_query(ids: Sequence[int], page: int, page_size: int) -> dict[str, Any]:
    """The body of ``POST asset/v1/content/assets/query`` for the assets whose legacy id is in ``ids``: page
    ``page`` (from 1) of ``page_size`` items, with the ``ASSET_FIELDS``."""
    return {
        "page": {"page": page, "pageSize": page_size},
        "query": {"property": "data.email.legacy.legacyId", "simpleOperator": "in", "value": list(ids)},
        "fields": list(ASSET_FIELDS),
    }


def asset_page(reply: Any) -> tuple[list[dict[str, Any]], int]:
    """``(items, total count)`` of an asset query reply; ``MalformedResponse`` when it has no items list or a
    count that is not a number."""
    if not isinstance(reply, dict) or not isinstance(reply.get("items", []), list):
        raise MalformedResponse("asset query reply has no items list")
    try:
        count = int(reply.get("count", 0))
    except (TypeError, ValueError):
        raise MalformedResponse("asset query reply has a bad count") from None
    return list(reply.get("items", [])), count


def rowset(rows: Sequence[Mapping[str, str]]) -> list[dict[str, Any]]:
    """The body of a rowset request that marks ``rows`` processed: ``[{"keys": row_keys(row), "values":
    {"Processed": True}}, …]``."""
    return [{"keys": row_keys(row), "values": {"Processed": True}} for row in rows]


def key_mismatches(reply: Any) -> list[RowFailure] | None:
    """The rows named by a 10006 error reply; ``None`` when the reply is not a 10006 error.

    An empty list means "10006, but the reply does not say which rows" (the client then tries rows
    one at a time)."""
    if not isinstance(reply, dict) or reply.get("errorcode") != KEY_MISMATCH:
        return None
    failures = []
    for item in reply.get("additionalErrors") or []:
        if isinstance(item, dict) and isinstance(item.get("keys"), dict):
            keys = {str(k): str(v) for k, v in item["keys"].items()}
            failures.append(RowFailure(keys, int(item.get("errorcode", KEY_MISMATCH)), str(item.get("message", ""))))
    return failures


def error_parts(reply: Any) -> tuple[int | None, str]:
    """``(errorcode, message)`` of a REST error reply: ``errorcode`` is None unless an int, ``message`` ``""``
    when absent; ``(None, "")`` for a reply that is not a JSON object."""
    if isinstance(reply, dict):
        code = reply.get("errorcode")
        return (code if isinstance(code, int) else None), str(reply.get("message", ""))
    return None, ""
