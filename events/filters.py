"""The metadata filter language: JSON filters over a vector's metadata, parsed into a typed tree.

A filter is a JSON object in the style of MongoDB, Chroma and Pinecone:

    {"section": "python", "size": {"$lt": 500}, "$or": [{"draft": false}, {"tags": {"$contains": "review"}}]}

Its keys are ANDed. A key is a logical operator, `$and` or `$or` (a non-empty list of filters) or `$not` (a
filter), or else a field. A field takes a bare value, which means `$eq`, or an object of field operators, which are
ANDed: `{"size": {"$gt": 1, "$lt": 5}}`. The empty filter `{}` matches every row.

Fields. `"a.b.c"` reads `metadata["a"]["b"]["c"]`. A path descends into objects only, never into arrays, and every
dot separates two parts: a metadata key that itself holds a dot, is empty or starts with `$` cannot be named. A field
is *missing* when a step of its path is absent or is not an object.

Values. Metadata values are JSON: null, booleans, numbers, strings, arrays and objects. The operands of a filter are
scalars: null, booleans, finite numbers and strings.

- Kinds never mix, and a mismatch is no match, never an error: a string neither equals nor compares with a number,
  and a boolean is not a number (`true` does not equal `1`).
- int and float are one kind, numbers, compared as IEEE doubles: `1` equals `1.0`, and integers beyond 2**53
  compare at double precision. Strings compare by Unicode code point, case-sensitively.
- Arrays, as in MongoDB: an operator applied to an array matches when some element matches it (`$eq`, `$in`,
  `$gt`/`$gte`/`$lt`/`$lte`, `$match`), so `{"tags": "python"}` matches `["python", "rust"]`. Elements that are
  arrays or objects match nothing. `$contains` is the element test of `$eq`, but matches arrays only.
- An object value is present (`$exists`) and equals nothing.
- null, as in MongoDB: `$eq: null` (and `$in` listing null) matches a null value, an array holding null, and a
  missing field. `$exists` tells them apart: a null value exists.

Operators.

- `$eq`, `$in` (a list of scalars, possibly empty): equality as above.
- `$ne`, `$nin`: exactly the negations of `$eq` and `$in`. So a missing field matches `{"$ne": 5}` and
  `{"$nin": [5]}`, an array matches `{"$ne": 5}` when no element is 5, and `{"$ne": null}` matches the fields that
  are present and not null (nor an array holding null).
- `$gt`, `$gte`, `$lt`, `$lte`: a number or a string; values of any other kind do not match.
- `$exists`: true or false, whether the field is present.
- `$contains`: a scalar; the field is an array with an element equal to it.
- `$match`: a string of words. Query and value are analysed into terms by the dataset's text analysis
  (`events.analysis`, the one BM25 uses: folding, tokenization, stop words, stemming), and a string matches when
  every term of the query is one of its terms, in any order: `"Python 3"` matches `"python 3.11 notes"`, `"py"`
  does not match `"python"`, and with English stemming `"running"` matches `"runs"`. A query without a word
  character is refused; one whose words are all stop words matches nothing. Datasets created before analysis was
  configurable compare the case-folded runs of word characters (`PLAIN_WORDS`).

Limits, since a filter is user input: 32 nested `$and`/`$or`/`$not`, 1,000 clauses (each operator and each bare
value is one), 10,000 values over all the `$in`/`$nin` lists, 32 parts in a field path, 65,536 characters of
field names and strings in all, 44,000 items (objects, lists, keys and values) in all.

`parse_filter` turns a filter into a tree of frozen dataclasses (`$ne` becomes `Not(Eq)`, `$nin` `Not(In)`, numbers
become floats, several clauses an `And`, a `$match` the terms of its query and the analyzer that made them) or
raises `FilterError`, which names the path of the bad clause. The tree
is an in-process form: messages and HTTP bodies carry the plain JSON object, validated by `FilterDict`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeAlias, cast, get_args

from pydantic import AfterValidator, WithJsonSchema
from pydantic_core import PydanticCustomError

from events.analysis import PLAIN_WORDS, Analyzer, analyzer_for

MAX_DEPTH = 32
MAX_CLAUSES = 1_000
MAX_VALUES = 10_000
MAX_FIELD_PARTS = 32
MAX_CHARS = 65_536
# Items (objects, lists, keys, values) a filter within the other limits can hold, and some: a measure of size
# that stops early on a huge filter.
MAX_ITEMS = 4 * (MAX_CLAUSES + MAX_VALUES)

Scalar: TypeAlias = str | float | bool | None
ErrorPath: TypeAlias = tuple[str | int, ...]
RangeOp = Literal["$gt", "$gte", "$lt", "$lte"]

_RANGE_OPS: frozenset[str] = frozenset(get_args(RangeOp))
_FIELD_OPS = frozenset({"$eq", "$ne", "$in", "$nin", "$exists", "$contains", "$match", *_RANGE_OPS})
_WORD = re.compile(r"\w")


def is_field_part(key: object) -> bool:
    """Whether a metadata key can be one part of a field path."""
    return isinstance(key, str) and key != "" and "." not in key and not key.startswith("$")


class FilterError(ValueError):
    """A filter that does not parse; `path` leads to the bad clause, as keys and list indexes."""

    def __init__(self, path: ErrorPath, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(
            f"invalid filter at {self.pointer}: {message}" if path else f"invalid filter: {message}"
        )

    @property
    def pointer(self) -> str:
        """The path as a JSON pointer (RFC 6901), unambiguous even for field names holding dots."""
        return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in self.path)


@dataclass(frozen=True, slots=True)
class ValueSet:
    """The operand of `$in`, split by kind so that a membership test is one hash look-up."""

    null: bool = False
    bools: frozenset[bool] = frozenset()
    numbers: frozenset[float] = frozenset()
    strings: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Eq:
    field: tuple[str, ...]
    value: Scalar


@dataclass(frozen=True, slots=True)
class In:
    field: tuple[str, ...]
    values: ValueSet


@dataclass(frozen=True, slots=True)
class Range:
    field: tuple[str, ...]
    op: RangeOp
    value: float | str


@dataclass(frozen=True, slots=True)
class Exists:
    field: tuple[str, ...]
    present: bool


@dataclass(frozen=True, slots=True)
class Contains:
    field: tuple[str, ...]
    value: Scalar


@dataclass(frozen=True, slots=True)
class Match:
    """`terms` are the query's, by `analyzer`, which analyses the values they are compared with."""

    field: tuple[str, ...]
    terms: frozenset[str]
    analyzer: Analyzer


@dataclass(frozen=True, slots=True)
class And:
    """All clauses hold; `And(())` is the empty filter, which matches everything."""

    clauses: tuple[FilterNode, ...]


@dataclass(frozen=True, slots=True)
class Or:
    clauses: tuple[FilterNode, ...]


@dataclass(frozen=True, slots=True)
class Not:
    clause: FilterNode


FilterNode: TypeAlias = Eq | In | Range | Exists | Contains | Match | And | Or | Not


def parse_filter(raw: Any, analyzer: Analyzer | None = None) -> FilterNode:
    """Validate a filter given as JSON-like data and return its tree; raise FilterError.

    `analyzer` is the dataset's (for `$match`); by default the analysis of datasets that predate the choice.
    """
    _check_size(raw)
    return _Parser(analyzer or analyzer_for(PLAIN_WORDS)).filter(raw, (), 0)


def _check_size(raw: Any) -> None:
    """Refuse a filter too large to parse cheaply, before parsing it (one 30 MiB `$match` string took seconds of
    the event loop). Stops as soon as the filter is known to be too large."""
    items, chars, stack = 0, 0, [raw]
    while stack:
        item = stack.pop()
        items += 1
        if isinstance(item, str):
            chars += len(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        if items > MAX_ITEMS or chars > MAX_CHARS:
            raise FilterError(
                (),
                f"a filter holds at most {MAX_CHARS:,} characters of names and strings and {MAX_ITEMS:,} items",
            )


class _Parser:
    def __init__(self, analyzer: Analyzer) -> None:
        self.analyzer = analyzer
        self.clauses = 0
        self.values = 0

    def filter(self, raw: Any, path: ErrorPath, depth: int) -> FilterNode:
        if not isinstance(raw, dict):
            raise FilterError(path, "a filter must be an object")
        nodes = [self.entry(key, value, (*path, key), depth) for key, value in raw.items()]
        return nodes[0] if len(nodes) == 1 else And(tuple(nodes))

    def entry(self, key: Any, value: Any, path: ErrorPath, depth: int) -> FilterNode:
        if not isinstance(key, str):
            raise FilterError(path, "keys must be strings")
        if key in ("$and", "$or", "$not"):
            self.count(path)
            if depth >= MAX_DEPTH:
                raise FilterError(path, f"$and, $or and $not nest at most {MAX_DEPTH} deep")
            if key == "$not":
                return Not(self.filter(value, path, depth + 1))
            if not isinstance(value, list) or not value:
                raise FilterError(path, f"{key} takes a non-empty list of filters")
            clauses = tuple(self.filter(item, (*path, i), depth + 1) for i, item in enumerate(value))
            return And(clauses) if key == "$and" else Or(clauses)
        if key in _FIELD_OPS:
            raise FilterError(path, f"{key} applies to a field: {{field: {{{key}: ...}}}}")
        if key.startswith("$"):
            raise FilterError(path, f"unknown operator {key}")
        field = self.field(key, path)
        if not isinstance(value, dict):
            self.count(path)
            return Eq(field, self.scalar(value, path))
        if not value:
            raise FilterError(path, "an object of operators needs at least one operator")
        nodes = [self.operator(field, op, operand, (*path, op)) for op, operand in value.items()]
        return nodes[0] if len(nodes) == 1 else And(tuple(nodes))

    def field(self, key: str, path: ErrorPath) -> tuple[str, ...]:
        parts = tuple(key.split("."))
        if not all(is_field_part(part) for part in parts):
            raise FilterError(
                path, "a field name is one or more dot-separated parts, none empty or starting with $"
            )
        if len(parts) > MAX_FIELD_PARTS:
            raise FilterError(path, f"a field path has at most {MAX_FIELD_PARTS} parts")
        return parts

    def operator(self, field: tuple[str, ...], op: Any, operand: Any, path: ErrorPath) -> FilterNode:
        self.count(path)
        if not isinstance(op, str) or not op.startswith("$"):
            raise FilterError(
                path,
                "a field takes a value or an object of operators; name nested fields with dots, as in a.b",
            )
        if op in ("$eq", "$ne"):
            node: FilterNode = Eq(field, self.scalar(operand, path))
            return Not(node) if op == "$ne" else node
        if op in ("$in", "$nin"):
            node = In(field, self.value_set(operand, path))
            return Not(node) if op == "$nin" else node
        if op in _RANGE_OPS:
            bound = self.scalar(operand, path) if isinstance(operand, str | int | float) else None
            if bound is None or isinstance(bound, bool):
                raise FilterError(path, f"{op} takes a number or a string")
            return Range(field, cast(RangeOp, op), bound)
        if op == "$exists":
            if not isinstance(operand, bool):
                raise FilterError(path, "$exists takes true or false")
            return Exists(field, operand)
        if op == "$contains":
            return Contains(field, self.scalar(operand, path))
        if op == "$match":
            if not isinstance(operand, str) or not _WORD.search(operand):
                raise FilterError(path, "$match takes a string with at least one word")
            return Match(field, self.analyzer.term_set(operand), self.analyzer)
        if op in ("$and", "$or", "$not"):
            raise FilterError(path, f"{op} combines whole filters: put it outside the field")
        raise FilterError(path, f"unknown operator {op}")

    def value_set(self, operand: Any, path: ErrorPath) -> ValueSet:
        if not isinstance(operand, list):
            raise FilterError(path, f"{path[-1]} takes a list of values")
        self.values += len(operand)
        if self.values > MAX_VALUES:
            raise FilterError(path, f"a filter lists at most {MAX_VALUES} values in $in and $nin")
        scalars = [self.scalar(item, (*path, i)) for i, item in enumerate(operand)]
        return ValueSet(
            null=None in scalars,
            bools=frozenset(v for v in scalars if isinstance(v, bool)),
            numbers=frozenset(v for v in scalars if isinstance(v, float)),
            strings=frozenset(v for v in scalars if isinstance(v, str)),
        )

    def scalar(self, value: Any, path: ErrorPath) -> Scalar:
        if value is None or isinstance(value, str | bool):
            return value
        if isinstance(value, int | float):
            try:
                number = float(value)
            except OverflowError:
                number = math.inf
            if not math.isfinite(number):
                raise FilterError(path, "numbers must be finite")
            return number
        raise FilterError(
            path, "a value must be a string, a number, a boolean or null (for arrays: $in or $contains)"
        )

    def count(self, path: ErrorPath) -> None:
        self.clauses += 1
        if self.clauses > MAX_CLAUSES:
            raise FilterError(path, f"a filter has at most {MAX_CLAUSES} clauses")


def _validated(raw: dict[str, Any]) -> dict[str, Any]:
    try:
        parse_filter(raw)
    except FilterError as exc:
        raise PydanticCustomError(
            "filter", "{message}", {"message": str(exc), "path": list(exc.path)}
        ) from exc
    return raw


FilterDict = Annotated[
    dict[str, Any],
    AfterValidator(_validated),
    WithJsonSchema(
        {
            "type": "object",
            "title": "Filter",
            "description": "Metadata filter: fields and $and/$or/$not; field operators $eq, $ne, $in, $nin, "
            "$gt, $gte, $lt, $lte, $exists, $contains, $match. Dotted keys read nested objects.",
        }
    ),
]
"""A filter in its wire form, the plain JSON object, checked with `parse_filter` when a model validates it."""
