"""``chunks``: a sequence cut into consecutive slices of at most a given size (IN requests, rowset calls, SQS
batches, Kafka records)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> list[Sequence[T]]:
    """``items`` in order, as slices of ``size`` items (the last may be shorter); ``[]`` for no items."""
    return [items[start : start + size] for start in range(0, len(items), size)]
