"""Evaluating SOAP ``SimpleFilterPart``/``ComplexFilterPart`` elements against flat records (pure)."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from lxml import etree

from .wire import OPERATORS, PARTNER_NS, parse_bool, parse_de_date, parse_soap_date

Predicate = Callable[[Mapping[str, Any]], bool]


class FilterError(ValueError):
    """The filter cannot be evaluated (unknown operator, missing operand…)."""


def _p(tag: str) -> str:
    return f"{{{PARTNER_NS}}}{tag}"


@functools.lru_cache(maxsize=1 << 16)
def parse_date(value: str) -> datetime | None:
    for parse in (parse_de_date, parse_soap_date):
        try:
            return parse(value)
        except ValueError:
            continue
    return None


def _key(value: str) -> tuple[int, Any]:
    """A comparable form of a string value: bool, then number, then case-insensitive text."""
    text = value.strip()
    try:
        return (0, parse_bool(text)) if text.lower() in ("true", "false") else (1, float(text))
    except ValueError:
        return (2, text.lower())


def _compare(left: str | None, rights: list[str], right_keys: list[tuple[int, Any]],
             right_set: frozenset[tuple[int, Any]], dates: list[datetime], op: str) -> bool:
    if op == "isNull":
        return left is None or left == ""
    if op == "isNotNull":
        return left is not None and left != ""
    if left is None:
        return False
    if dates:
        when = parse_date(left)
        if when is None:
            # An unparseable date matches every date comparison, so bad rows reach the caller.
            return True
        keys: list[Any] = dates
        value: Any = when
    else:
        keys = right_keys
        value = _key(left)
        if op != "IN" and keys and keys[0][0] != value[0]:
            value, keys = (2, left.strip().lower()), [(2, right.strip().lower()) for right in rights]
    if op == "like":
        pattern = re.escape(rights[0]).replace("%", ".*").replace("_", ".")
        return re.fullmatch(pattern, left, re.IGNORECASE | re.DOTALL) is not None
    if op == "IN":
        return value in right_set
    if op == "between":
        return len(keys) == 2 and keys[0] <= value <= keys[1]
    if not keys:
        raise FilterError(f"{op} needs a value")
    target = keys[0]
    checks: dict[str, Callable[[], bool]] = {
        "equals": lambda: value == target,
        "notEquals": lambda: value != target,
        "greaterThan": lambda: value > target,
        "greaterThanOrEqual": lambda: value >= target,
        "lessThan": lambda: value < target,
        "lessThanOrEqual": lambda: value <= target,
    }
    if op not in checks:
        raise FilterError(f"unknown SimpleOperator {op!r}")
    try:
        return checks[op]()
    except TypeError:
        return False


def compile_filter(element: etree._Element) -> Predicate:
    """A predicate for a ``Filter`` element (Simple or Complex, detected by its children)."""
    left = element.find(_p("LeftOperand"))
    if left is not None:
        right = element.find(_p("RightOperand"))
        logical = (element.findtext(_p("LogicalOperator")) or "").strip().upper()
        if right is None or logical not in ("AND", "OR"):
            raise FilterError("ComplexFilterPart needs LeftOperand, LogicalOperator and RightOperand")
        first, second = compile_filter(left), compile_filter(right)
        if logical == "AND":
            return lambda record: first(record) and second(record)
        return lambda record: first(record) or second(record)
    prop = (element.findtext(_p("Property")) or "").strip()
    op = (element.findtext(_p("SimpleOperator")) or "").strip()
    if not prop or not op:
        raise FilterError("SimpleFilterPart needs Property and SimpleOperator")
    values = [value.text or "" for value in element.iterfind(_p("Value"))]
    dates = []
    for text in (value.text or "" for value in element.iterfind(_p("DateValue"))):
        when = parse_date(text)
        if when is None:
            raise FilterError(f"bad DateValue {text!r}")
        dates.append(when)
    if op not in OPERATORS:
        raise FilterError(f"unknown SimpleOperator {op!r}")
    # comparable forms of the values are computed once per filter, not once per record
    keys = [_key(value) for value in values]
    key_set = frozenset(keys)
    return lambda record: _compare(_lookup(record, prop), values, keys, key_set, dates, op)


def _lookup(record: Mapping[str, Any], prop: str) -> str | None:
    value = record.get(prop)
    if value is None and isinstance(record.get("Properties"), dict):
        value = record["Properties"].get(prop)
    return None if value is None else str(value)
