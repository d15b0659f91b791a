"""Metadata filters evaluated on one row, and the value semantics the columnar evaluator shares.

The language and its semantics are defined in `events/filters.py`. `matches` serves the applier's deletes by filter;
`tributary.metadata_columns.mask` evaluates the same filters over all rows at once for search, and reuses `kind_of`,
`as_number`, `resolve` and the answer for a missing field from here, so that the two cannot drift apart.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from enum import IntEnum
from typing import Any, Final

from events.filters import (
    And,
    Contains,
    Eq,
    Exists,
    FilterNode,
    In,
    Match,
    Not,
    Or,
    Range,
    RangeOp,
    Scalar,
    ValueSet,
)

MISSING: Final = object()
"""What `resolve` answers for a field that is not there."""

ORDER: Final[dict[RangeOp, Callable[[Any, Any], Any]]] = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}


class Kind(IntEnum):
    MISSING = 0
    NULL = 1
    BOOL = 2
    NUMBER = 3
    STRING = 4
    LIST = 5
    OTHER = 6  # an object (or anything JSON has no scalar for): present, but equal to nothing


_KIND_OF_TYPE: Final[dict[type, Kind]] = {
    type(None): Kind.NULL,
    bool: Kind.BOOL,
    int: Kind.NUMBER,
    float: Kind.NUMBER,
    str: Kind.STRING,
    list: Kind.LIST,
    dict: Kind.OTHER,
}


def kind_of(value: Any) -> Kind:
    # The look-up by exact type answers for everything JSON decodes to, several times faster than isinstance.
    kind = _KIND_OF_TYPE.get(type(value))
    if kind is not None:
        return kind
    if value is None:
        return Kind.NULL
    if isinstance(value, bool):  # before int: bool is an int in Python, not a number here
        return Kind.BOOL
    if isinstance(value, int | float):
        return Kind.NUMBER
    if isinstance(value, str):
        return Kind.STRING
    if isinstance(value, list):
        return Kind.LIST
    return Kind.MISSING if value is MISSING else Kind.OTHER


def as_number(value: int | float) -> float:
    """A number as the float64 it is compared as; integers beyond the float range become infinities."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def resolve(metadata: dict[str, Any], field: tuple[str, ...]) -> Any:
    """The value at a field path, descending into objects only, or MISSING."""
    value: Any = metadata
    for part in field:
        if not isinstance(value, dict):
            return MISSING
        value = value.get(part, MISSING)
        if value is MISSING:
            return MISSING
    return value


def matches(node: FilterNode, metadata: dict[str, Any]) -> bool:
    """Whether one row's metadata matches a parsed filter."""
    match node:
        case And(clauses):
            return all(matches(clause, metadata) for clause in clauses)
        case Or(clauses):
            return any(matches(clause, metadata) for clause in clauses)
        case Not(clause):
            return not matches(clause, metadata)
        case Exists(field, present):
            return (resolve(metadata, field) is not MISSING) == present
        case Eq(field, operand):
            return _some(resolve(metadata, field), lambda value: _equals(value, operand))
        case In(field, values):
            return _some(resolve(metadata, field), lambda value: _member(value, values))
        case Range(field, op, bound):
            return _some(resolve(metadata, field), lambda value: _in_range(value, op, bound))
        case Contains(field, operand):
            found = resolve(metadata, field)
            return isinstance(found, list) and any(_equals(item, operand) for item in found)
        case Match(field, terms, analyzer):
            # No terms (only stop words) match nothing, as in Elasticsearch: the empty set is a subset of all.
            return bool(terms) and _some(
                resolve(metadata, field),
                lambda value: isinstance(value, str) and terms <= analyzer.term_set(value),
            )


def _some(value: Any, test: Callable[[Any], bool]) -> bool:
    """An operator on an array holds when it holds for some element."""
    if isinstance(value, list):
        return any(test(item) for item in value)
    return test(value)


def _equals(value: Any, operand: Scalar) -> bool:
    kind = kind_of(value)
    if operand is None:
        return kind is Kind.NULL or kind is Kind.MISSING
    if isinstance(operand, bool):
        return kind is Kind.BOOL and value == operand
    if isinstance(operand, float):
        return kind is Kind.NUMBER and as_number(value) == operand
    return kind is Kind.STRING and value == operand


def _member(value: Any, values: ValueSet) -> bool:
    kind = kind_of(value)
    if kind is Kind.NULL or kind is Kind.MISSING:
        return values.null
    if kind is Kind.BOOL:
        return bool(value) in values.bools
    if kind is Kind.NUMBER:
        return as_number(value) in values.numbers
    return kind is Kind.STRING and value in values.strings


def _in_range(value: Any, op: RangeOp, bound: float | str) -> bool:
    kind = kind_of(value)
    if isinstance(bound, float):
        return kind is Kind.NUMBER and bool(ORDER[op](as_number(value), bound))
    return kind is Kind.STRING and bool(ORDER[op](value, bound))
