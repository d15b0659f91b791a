"""The metadata filter language: parse errors and their paths, each operator, and the row evaluator, the columnar
evaluator and a naive oracle of the documented semantics agreeing on random filters over random metadata."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from events.filters import (
    MAX_CLAUSES,
    MAX_DEPTH,
    MAX_VALUES,
    And,
    Eq,
    FilterDict,
    FilterError,
    In,
    Not,
    Range,
    ValueSet,
    parse_filter,
)
from tests.helpers import serving
from tributary.filtering import matches
from tributary.metadata_columns import MetadataColumns, mask

# The oracle: the semantics of the events/filters.py docstring, read straight off the raw filter.

ABSENT = object()


def oracle(raw: dict[str, Any], row: dict[str, Any]) -> bool:
    for key, value in raw.items():
        if key == "$and":
            ok = all(oracle(item, row) for item in value)
        elif key == "$or":
            ok = any(oracle(item, row) for item in value)
        elif key == "$not":
            ok = not oracle(value, row)
        else:
            ops = value if isinstance(value, dict) else {"$eq": value}
            found = lookup(row, key)
            ok = all(oracle_op(op, operand, found) for op, operand in ops.items())
        if not ok:
            return False
    return True


def lookup(row: dict[str, Any], key: str) -> Any:
    node: Any = row
    for part in key.split("."):
        if type(node) is not dict or part not in node:
            return ABSENT
        node = node[part]
    return node


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if type(value) is bool:
        return "bool"
    if type(value) in (int, float):
        return "number"
    if type(value) is str:
        return "string"
    return "other"


def number(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def same(value: Any, operand: Any) -> bool:
    kind = type_name(value)
    if kind != type_name(operand) or kind == "other":
        return False
    return number(value) == number(operand) if kind == "number" else bool(value == operand)


def oracle_op(op: str, operand: Any, found: Any) -> bool:
    candidates = [] if found is ABSENT else found if isinstance(found, list) else [found]
    if op == "$eq":
        return (found is ABSENT and operand is None) or any(same(c, operand) for c in candidates)
    if op == "$ne":
        return not oracle_op("$eq", operand, found)
    if op == "$in":
        return any(oracle_op("$eq", item, found) for item in operand)
    if op == "$nin":
        return not oracle_op("$in", operand, found)
    if op == "$exists":
        return (found is not ABSENT) is operand
    if op == "$contains":
        return isinstance(found, list) and any(same(c, operand) for c in found)
    if op == "$match":
        wanted = set(re.findall(r"\w+", operand.casefold()))
        return any(
            type_name(c) == "string" and wanted <= set(re.findall(r"\w+", c.casefold())) for c in candidates
        )
    compare = {"$gt": float.__gt__, "$gte": float.__ge__, "$lt": float.__lt__, "$lte": float.__le__}[op]
    for c in candidates:
        kind = type_name(c)
        if kind == type_name(operand) == "number" and compare(number(c), number(operand)):
            return True
        if kind == type_name(operand) == "string":
            order = (c > operand) - (c < operand)
            if compare(float(order), 0.0):
                return True
    return False


def select(raw: dict[str, Any], rows: list[dict[str, Any]]) -> list[int]:
    """Indexes of the matching rows, after checking that both evaluators and the oracle agree."""
    node = parse_filter(raw)
    by_row = [i for i, row in enumerate(rows) if matches(node, row)]
    columns = MetadataColumns()
    columns.append(rows)
    assert np.flatnonzero(mask(node, columns)).tolist() == by_row
    assert [i for i, row in enumerate(rows) if oracle(raw, row)] == by_row
    return by_row


# Parsing.


@pytest.mark.parametrize(
    ("raw", "path", "message"),
    [
        ([], (), "must be an object"),
        ({"$foo": 1}, ("$foo",), "unknown operator $foo"),
        ({"a": {"$foo": 1}}, ("a", "$foo"), "unknown operator $foo"),
        ({"$eq": 1}, ("$eq",), "applies to a field"),
        ({"a": {"$not": {"$gt": 1}}}, ("a", "$not"), "outside the field"),
        ({"a": {"$in": 1}}, ("a", "$in"), "takes a list"),
        ({"a": {"$nin": "xy"}}, ("a", "$nin"), "takes a list"),
        ({"a": {"$in": [1, [2]]}}, ("a", "$in", 1), "a value must be"),
        ({"$and": []}, ("$and",), "non-empty list"),
        ({"$or": {"a": 1}}, ("$or",), "non-empty list"),
        ({"$or": [{"a": 1}, 3]}, ("$or", 1), "must be an object"),
        ({"$not": [{"a": 1}]}, ("$not",), "must be an object"),
        ({"$and": [{"a": 1}, {"size": {"$lt": [1]}}]}, ("$and", 1, "size", "$lt"), "number or a string"),
        ({"a": {"$gt": True}}, ("a", "$gt"), "number or a string"),
        ({"a": {"$lte": None}}, ("a", "$lte"), "number or a string"),
        ({"a": {"$eq": {"b": 1}}}, ("a", "$eq"), "a value must be"),
        ({"a": [1, 2]}, ("a",), "a value must be"),
        ({"a": {"$contains": [1]}}, ("a", "$contains"), "a value must be"),
        ({"a": {"$exists": 1}}, ("a", "$exists"), "true or false"),
        ({"a": {"$match": " ... "}}, ("a", "$match"), "at least one word"),
        ({"a": {"$match": 3}}, ("a", "$match"), "at least one word"),
        ({"": 1}, ("",), "field name"),
        ({"a..b": 1}, ("a..b",), "field name"),
        ({"a.$b": 1}, ("a.$b",), "field name"),
        ({"a": {}}, ("a",), "at least one operator"),
        ({"a": {"b": 1}}, ("a", "b"), "dots"),
        ({"a": {"$eq": math.nan}}, ("a", "$eq"), "finite"),
        ({"a": 10**400}, ("a",), "finite"),
        ({"$and": [{"a": {"$ne": math.inf}}]}, ("$and", 0, "a", "$ne"), "finite"),
    ],
)
def test_a_bad_filter_is_refused_with_the_path_of_the_bad_clause(
    raw: Any, path: tuple[str | int, ...], message: str
) -> None:
    with pytest.raises(FilterError) as info:
        parse_filter(raw)
    assert info.value.path == path
    assert message in info.value.message
    assert isinstance(info.value, ValueError)


def test_the_error_names_its_path_as_a_json_pointer() -> None:
    with pytest.raises(FilterError, match=r"^invalid filter at /\$or/0/a~1b\.c/\$lt: "):
        parse_filter({"$or": [{"a/b.c": {"$lt": None}}]})
    with pytest.raises(FilterError, match=r"^invalid filter: a filter must be an object$"):
        parse_filter("a = 1")


def test_nesting_is_limited() -> None:
    raw: dict[str, Any] = {"a": 1}
    for _ in range(MAX_DEPTH):
        raw = {"$not": raw}
    parse_filter(raw)
    with pytest.raises(FilterError) as info:
        parse_filter({"$not": raw})
    assert info.value.path == ("$not",) * (MAX_DEPTH + 1)


def test_clauses_and_listed_values_are_limited() -> None:
    parse_filter({"$or": [{"a": i} for i in range(MAX_CLAUSES - 1)]})
    with pytest.raises(FilterError) as info:
        parse_filter({"$or": [{"a": i} for i in range(MAX_CLAUSES)]})
    assert info.value.path == ("$or", MAX_CLAUSES - 1, "a")
    parse_filter({"a": {"$in": list(range(MAX_VALUES))}})
    with pytest.raises(FilterError, match="at most 10000 values"):
        parse_filter(
            {"a": {"$in": list(range(MAX_VALUES // 2))}, "b": {"$nin": list(range(MAX_VALUES // 2 + 1))}}
        )


def test_the_tree_is_typed_and_normalised() -> None:
    assert parse_filter({}) == And(())
    assert parse_filter({"a.b": 1}) == Eq(("a", "b"), 1.0)
    assert parse_filter({"a": {"$ne": None}}) == Not(Eq(("a",), None))
    assert parse_filter({"a": {"$gt": 1, "$lt": "z"}}) == And(
        (Range(("a",), "$gt", 1.0), Range(("a",), "$lt", "z"))
    )
    assert parse_filter({"a": {"$nin": [1, "x", True, None]}}) == Not(
        In(
            ("a",),
            ValueSet(null=True, bools=frozenset({True}), numbers=frozenset({1.0}), strings=frozenset({"x"})),
        )
    )


class Body(BaseModel):
    filter: FilterDict


def test_the_pydantic_type_keeps_the_plain_json_and_names_the_bad_path() -> None:
    raw = {"section": "python", "size": {"$lt": 500}}
    assert Body(filter=raw).model_dump(mode="json") == {"filter": raw}
    assert Body.model_json_schema()["properties"]["filter"]["type"] == "object"
    with pytest.raises(ValidationError) as info:
        Body.model_validate({"filter": {"$and": [{"size": {"$lt": []}}]}})
    (error,) = info.value.errors()
    assert error["loc"] == ("filter",)
    assert error["ctx"]["path"] == ["$and", 0, "size", "$lt"]
    assert "/$and/0/size/$lt" in error["msg"]


async def test_an_http_route_answers_422_naming_the_path() -> None:
    app = FastAPI()

    @app.post("/search")
    def search(body: Body) -> dict[str, Any]:
        return body.filter

    async with serving(app) as client:
        assert (await client.post("/search", json={"filter": {"a": 1}})).json() == {"a": 1}
        answer = await client.post("/search", json={"filter": {"$or": [{"a": {"$exists": "yes"}}]}})
    assert answer.status_code == 422
    (detail,) = answer.json()["detail"]
    assert detail["loc"] == ["body", "filter"]
    assert detail["ctx"]["path"] == ["$or", 0, "a", "$exists"]


# Each operator, on both evaluators.

ROWS: list[dict[str, Any]] = [
    {
        "section": "python",
        "size": 100,
        "tags": ["db", "search"],
        "title": "Fast vector search in Python 3.11",
        "draft": False,
        "meta": {"lang": "en", "rank": 1.5},
    },
    {
        "section": "rust",
        "size": 600.0,
        "tags": ["search"],
        "title": "Rust notes",
        "draft": True,
        "meta": {"lang": "de"},
    },
    {"section": "python", "size": 499, "tags": [], "title": None, "draft": None},
    {"section": 1, "size": "100", "tags": "db", "meta": "flat", "draft": 0},
    {},
]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({}, [0, 1, 2, 3, 4]),
        ({"section": "python"}, [0, 2]),
        ({"section": {"$eq": "python"}}, [0, 2]),
        ({"section": "python", "size": {"$lt": 500}}, [0, 2]),
        ({"size": {"$gt": 100, "$lt": 600}}, [2]),
        ({"size": {"$gte": 100, "$lte": 600}}, [0, 1, 2]),
        ({"size": 600}, [1]),
        ({"size": {"$ne": 100}}, [1, 2, 3, 4]),
        ({"size": {"$in": [100, 499]}}, [0, 2]),
        ({"size": {"$in": []}}, []),
        ({"size": {"$nin": [100, 499]}}, [1, 3, 4]),
        ({"section": {"$in": ["rust", 1]}}, [1, 3]),
        ({"size": {"$lt": "2"}}, [3]),
        ({"section": {"$gte": "q"}}, [1]),
        ({"tags": "search"}, [0, 1]),
        ({"tags": "db"}, [0, 3]),
        ({"tags": {"$contains": "db"}}, [0]),
        ({"tags": {"$ne": "search"}}, [2, 3, 4]),
        ({"tags": {"$gt": "r"}}, [0, 1]),
        ({"title": {"$match": "python VECTOR"}}, [0]),
        ({"title": {"$match": "python 3"}}, [0]),
        ({"title": {"$match": "vec"}}, []),
        ({"title": None}, [2, 3, 4]),
        ({"title": {"$ne": None}}, [0, 1]),
        ({"title": {"$in": [None, "Rust notes"]}}, [1, 2, 3, 4]),
        ({"title": {"$exists": True}}, [0, 1, 2]),
        ({"title": {"$exists": False}}, [3, 4]),
        ({"draft": False}, [0]),
        ({"draft": 0}, [3]),
        ({"draft": {"$in": [True, False]}}, [0, 1]),
        ({"meta.lang": "en"}, [0]),
        ({"meta.rank": {"$gt": 1}}, [0]),
        ({"meta.lang": {"$exists": False}}, [2, 3, 4]),
        ({"meta": {"$exists": True}}, [0, 1, 3]),
        ({"meta": {"$ne": "flat"}}, [0, 1, 2, 4]),
        ({"$or": [{"section": "rust"}, {"size": {"$lt": 200}}]}, [0, 1]),
        ({"$and": [{"section": "python"}, {"$not": {"tags": "db"}}]}, [2]),
        ({"$not": {"section": "python"}}, [1, 3, 4]),
        ({"nowhere": None}, [0, 1, 2, 3, 4]),
        ({"nowhere": 1}, []),
        ({"nowhere": {"$nin": [1]}}, [0, 1, 2, 3, 4]),
    ],
)
def test_operators(raw: dict[str, Any], expected: list[int]) -> None:
    assert select(raw, ROWS) == expected


def test_kinds_never_mix() -> None:
    rows: list[dict[str, Any]] = [
        {"v": True},
        {"v": 1},
        {"v": 1.0},
        {"v": "1"},
        {"v": [1, "1"]},
        {"v": [[1]]},
    ]
    assert select({"v": True}, rows) == [0]
    assert select({"v": 1}, rows) == [1, 2, 4]
    assert select({"v": "1"}, rows) == [3, 4]
    assert select({"v": {"$gte": 1}}, rows) == [1, 2, 4]
    assert select({"v": {"$gte": "1"}}, rows) == [3, 4]


def test_numbers_compare_as_doubles() -> None:
    rows: list[dict[str, Any]] = [{"n": 2**53}, {"n": 10**400}, {"n": -(10**400)}, {"n": math.nan}]
    assert select({"n": 2**53 + 1}, rows) == [0]
    assert select({"n": {"$gt": 1e308}}, rows) == [1]
    assert select({"n": {"$lt": -1e308}}, rows) == [2]
    assert select({"n": {"$ne": 0}}, rows) == [0, 1, 2, 3]
    assert select({"n": {"$gte": 0}}, rows) == [0, 1]


def test_paths_descend_into_objects_only() -> None:
    rows: list[dict[str, Any]] = [{"a.b": 1}, {"a": {"b": 1}}, {"a": [{"b": 1}]}, {"a": {"$b": 1, "": 2}}]
    assert select({"a.b": 1}, rows) == [1]
    assert select({"a": {"$exists": True}}, rows) == [1, 2, 3]
    assert select({"a.b": {"$exists": False}}, rows) == [0, 2, 3]


def test_match_compares_case_folded_words() -> None:
    rows: list[dict[str, Any]] = [
        {"t": "Straße in Köln"},
        {"t": "c++ and C#"},
        {"t": ["Snake_case x", "other"]},
    ]
    assert select({"t": {"$match": "STRASSE köln"}}, rows) == [0]
    assert select({"t": {"$match": "c"}}, rows) == [1]
    assert select({"t": {"$match": "snake_case"}}, rows) == [2]
    assert select({"t": {"$match": "snake"}}, rows) == []


# The columnar store under change.


def test_replace_delete_and_revive() -> None:
    columns = MetadataColumns()
    assert columns.append([{"a": "x"}, {"a": 1}, {"a": ["x", "y"]}]) == range(3)
    is_x = parse_filter({"a": "x"})
    assert mask(is_x, columns).tolist() == [True, False, True]
    columns.replace(0, {"a": 2})
    columns.replace(1, {"a": ["x"]})
    columns.delete([2])
    assert mask(is_x, columns).tolist() == [False, True, False]
    assert mask(parse_filter({}), columns).tolist() == [True, True, False]
    assert mask(parse_filter({"a": {"$exists": False}}), columns).tolist() == [False, False, False]
    columns.replace(2, {"b": True})
    assert columns.live.tolist() == [True, True, True]
    assert mask(parse_filter({"a": None}), columns).tolist() == [False, False, True]
    assert columns.append([{"a": "x"}]) == range(3, 4)
    assert mask(is_x, columns).tolist() == [False, True, False, True]
    with pytest.raises(IndexError):
        columns.replace(4, {})


def test_churn_is_compacted() -> None:
    """Replacements leave dead array elements and unused strings behind; compacting them changes no answer."""
    columns = MetadataColumns()
    model: list[dict[str, Any]] = [
        {"s": "first", "l": ["a", "b"]},
        {"s": "kept", "l": ["kept", 7]},
        {"s": "x"},
    ]
    columns.append(model)
    filters: list[dict[str, Any]] = [
        {"s": "kept"},
        {"s": "value 4999"},
        {"s": {"$match": "value"}},
        {"s": {"$gt": "a"}},
        {"l": {"$in": ["kept", 4999]}},
        {"l": {"$contains": None}},
        {"l": {"$lt": "item 5"}},
        {"l": {"$match": "item"}},
        {"l": 7},
        {"l": "new"},
        {"l": {"$exists": True}},
    ]

    def check() -> None:
        for raw in filters:
            assert mask(parse_filter(raw), columns).tolist() == [oracle(raw, row) for row in model], raw

    for i in range(5000):
        model[0] = {"s": f"value {i}", "l": [f"item {i}", i, None, "common"]}
        columns.replace(0, model[0])
        if i % 700 == 0:
            check()
    check()
    model[1] = {"s": "new", "l": ["new"]}
    columns.replace(1, model[1])
    check()
    strings = columns.column(("s",))
    items = columns.column(("l",))
    assert strings is not None and items is not None
    assert len(strings.strings.values) < 2100
    assert items.item_count < 3000


# Random filters over random metadata.

SCALAR_POOL: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    2,
    1.0,
    2.5,
    -0.5,
    "x",
    "y",
    "X",
    "Foo bar",
    "bar baz",
    "",
    "1",
]
VALUE_POOL: list[Any] = [
    *SCALAR_POOL,
    *([], [1], ["x", 2], [None], [True, "y"], [[1]], [{"d": 1}], ["bar foo", 1.0], [False, 0]),
    *({}, {"d": 1}, {"d": "x"}, {"d": [1, "X"]}, {"d": None, "e": True}, {"e": 2.5}),
    ABSENT,
]


def universe() -> list[dict[str, Any]]:
    """Rows that hold every value of VALUE_POOL in each field (a, b, c, c.d, c.e), and unreachable keys."""
    size = len(VALUE_POOL)
    rows = []
    for i in range(size):
        fields = {
            "a": VALUE_POOL[i],
            "b": VALUE_POOL[(5 * i + 1) % size],
            "c": VALUE_POOL[(11 * i + 2) % size],
        }
        rows.append({k: v for k, v in fields.items() if v is not ABSENT})
        nested = {"d": VALUE_POOL[(7 * i + 3) % size], "e": VALUE_POOL[(13 * i + 4) % size]}
        rows.append(
            {"c": {k: v for k, v in nested.items() if v is not ABSENT}, "c.d": VALUE_POOL[i], "$x": 1}
        )
    return rows


UNIVERSE = universe()
SCALARS = st.sampled_from(SCALAR_POOL)
VALUES = st.one_of(
    SCALARS,
    st.lists(st.one_of(SCALARS, st.lists(SCALARS, max_size=1)), max_size=3),
    st.fixed_dictionaries({}, optional={"d": SCALARS}),
)
METADATA = st.fixed_dictionaries(
    {},
    optional={
        "a": VALUES,
        "b": VALUES,
        "c": st.one_of(VALUES, st.fixed_dictionaries({}, optional={"d": VALUES, "e": SCALARS})),
    },
)
FIELDS = st.sampled_from(["a", "b", "c", "c.d", "c.e", "z"])
OPERANDS = st.sampled_from([None, True, False, 0, 1, -1, 2, 1.0, 2.5, "x", "y", "bar", "1", ""])
BOUNDS = st.sampled_from([0, 1, 2, 1.5, -1, "x", "bar", "y", "", "1"])
OPERATOR = st.one_of(
    st.tuples(st.sampled_from(["$eq", "$ne", "$contains"]), OPERANDS),
    st.tuples(st.sampled_from(["$in", "$nin"]), st.lists(OPERANDS, max_size=3)),
    st.tuples(st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), BOUNDS),
    st.tuples(st.just("$exists"), st.booleans()),
    st.tuples(st.just("$match"), st.sampled_from(["foo", "bar", "BAR foo", "baz", "x", "1"])),
)
CONDITION = st.one_of(OPERANDS, st.lists(OPERATOR, min_size=1, max_size=2).map(dict))
FIELD_FILTERS = st.dictionaries(FIELDS, CONDITION, min_size=1, max_size=2)
FILTERS = st.recursive(
    FIELD_FILTERS,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(lambda items: {"$and": items}),
        st.lists(inner, min_size=1, max_size=3).map(lambda items: {"$or": items}),
        inner.map(lambda item: {"$not": item}),
        st.tuples(inner, inner).map(lambda pair: {**pair[0], **pair[1]}),
    ),
    max_leaves=6,
)
# Replace a row by other metadata, or delete it (None).
CHANGES = st.lists(
    st.tuples(st.integers(0, len(UNIVERSE) - 1), st.one_of(st.none(), st.sampled_from(UNIVERSE), METADATA)),
    max_size=12,
)


def agree(
    changes: list[tuple[int, dict[str, Any] | None]], extra: list[dict[str, Any]], raw: dict[str, Any]
) -> None:
    """Append UNIVERSE, apply `changes`, append `extra`; the mask, the row evaluator and the oracle must agree."""
    node = parse_filter(raw)
    columns = MetadataColumns()
    columns.append(UNIVERSE)
    model: list[dict[str, Any] | None] = list(UNIVERSE)
    for row, metadata in changes:
        if metadata is None:
            columns.delete([row])
        else:
            columns.replace(row, metadata)
        model[row] = metadata
    columns.append(extra)
    model += extra
    expected = [row is not None and oracle(raw, row) for row in model]
    assert mask(node, columns).tolist() == expected
    assert [row is not None and matches(node, row) for row in model] == expected


@settings(max_examples=150, deadline=None)
@given(changes=CHANGES, extra=st.lists(METADATA, max_size=3), raw=FIELD_FILTERS)
def test_evaluators_agree_with_the_oracle_on_field_filters(
    changes: list[tuple[int, dict[str, Any] | None]], extra: list[dict[str, Any]], raw: dict[str, Any]
) -> None:
    agree(changes, extra, raw)


@settings(max_examples=150, deadline=None)
@given(changes=CHANGES, extra=st.lists(METADATA, max_size=3), raw=FILTERS)
def test_evaluators_agree_with_the_oracle_on_nested_filters(
    changes: list[tuple[int, dict[str, Any] | None]], extra: list[dict[str, Any]], raw: dict[str, Any]
) -> None:
    agree(changes, extra, raw)


JUNK = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(),
        st.text(max_size=4),
        st.sampled_from(["$and", "$in", "a", "a.b"]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(
            st.one_of(
                st.sampled_from(["$and", "$or", "$not", "$eq", "$ne", "$in", "$nin", "$gt", "$lte"]),
                st.sampled_from(["$exists", "$contains", "$match", "a", "b", "a.b", ""]),
                st.text(max_size=3),
            ),
            inner,
            max_size=3,
        ),
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(raw=JUNK)
def test_any_input_parses_or_fails_with_a_filter_error(raw: Any) -> None:
    try:
        node = parse_filter(raw)
    except FilterError as exc:
        assert isinstance(exc.path, tuple)
        return
    assert select(raw, ROWS) == [i for i, row in enumerate(ROWS) if matches(node, row)]
