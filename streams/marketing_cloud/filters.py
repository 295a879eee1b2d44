"""Retrieve filters as small immutable values (``SimpleFilterPart`` / ``ComplexFilterPart``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

OPERATORS = frozenset(
    {
        "equals",
        "notEquals",
        "greaterThan",
        "greaterThanOrEqual",
        "lessThan",
        "lessThanOrEqual",
        "IN",
        "between",
        "like",
        "isNull",
        "isNotNull",
    }
)


@dataclass(frozen=True)
class SimpleFilter:
    """``prop operator values``; ``date_value`` compares against a date (written as ``DateValue``). An operator
    not in ``OPERATORS`` is a ``ValueError``."""

    prop: str
    operator: str
    values: list[str] | str = field(default_factory=list)
    date_value: datetime | None = None

    def __post_init__(self) -> None:
        if self.operator not in OPERATORS:
            raise ValueError(f"unknown operator {self.operator!r}")

    @property
    def value_list(self) -> list[str]:
        """``values`` as a list: a single string is a list of one."""
        return [self.values] if isinstance(self.values, str) else list(self.values)


@dataclass(frozen=True)
class ComplexFilter:
    """``left logical right``; a ``logical`` other than ``AND`` or ``OR`` is a ``ValueError``."""

    left: Filter
    logical: Literal["AND", "OR"]
    right: Filter

    def __post_init__(self) -> None:
        if self.logical not in ("AND", "OR"):
            raise ValueError(f"unknown logical operator {self.logical!r}")


Filter = SimpleFilter | ComplexFilter


def ids_in(prop: str, ids: list[str]) -> SimpleFilter:
    """``prop IN ids``."""
    return SimpleFilter(prop, "IN", list(ids))
