"""Entity strings (``mc.{tenant}.{type}*{id}``) and the deterministic ObjectIds derived from them.

A model document's ``_id`` is a hash of its entity, so a click document can reference its send and
identity without a lookup, and a replay into an empty database writes identical documents.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

from bson import ObjectId

EntityType = Literal["send", "subscriber", "email", "category"]

References = dict[str, ObjectId]
"""Entity string → the ``_id`` a reference to its document stores (``streams.references`` resolves them)."""

NAMESPACES: dict[str, str] = {
    "send": "FuelSOAP:Send",
    "subscriber": "FuelSOAP:Subscriber",
    "email": "FuelSOAP:Email",
    "category": "FuelSOAP:DataFolder",
}


def entity(tenant: str, kind: EntityType, ident: int | str) -> str:
    """The entity string ``mc.{tenant}.{kind}*{ident}``."""
    return f"mc.{tenant}.{kind}*{ident}"


def parse_entity(value: str) -> tuple[str, EntityType, str]:
    """Split ``mc.ien.send*607105`` into ``("ien", "send", "607105")``; ``ValueError`` when it lacks the ``*``
    or the three dotted parts, or names an unknown type."""
    prefix, ident = value.split("*", 1)
    _, tenant, kind = prefix.split(".", 2)
    if kind not in NAMESPACES:
        raise ValueError(f"unknown entity type in {value!r}")
    return tenant, kind, ident  # type: ignore[return-value]


def snapshot_data(record: Any) -> dict[str, Any]:
    """An SFMC client record (a dataclass) as JSON-ready snapshot data (datetimes as ISO strings). Fields are
    read directly: ``dataclasses.asdict`` deep-copies, which cost more than the rest of a fetch."""
    data = {field.name: getattr(record, field.name) for field in dataclasses.fields(record)}
    return {key: value.isoformat() if isinstance(value, datetime) else value for key, value in data.items()}


def object_id(key: str) -> ObjectId:
    """A stable ObjectId for any string key (an entity, or a click document's natural key)."""
    return ObjectId(hashlib.blake2b(key.encode(), digest_size=12).digest())


def derived_ids(entities: Iterable[str | None]) -> References:
    """``{entity: object_id(entity)}``: the references of a database holding no legacy documents."""
    return {key: object_id(key) for key in entities if key is not None}
