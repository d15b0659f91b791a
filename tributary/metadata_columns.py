"""Columnar metadata for filtered search: typed numpy arrays per field, and `mask`, which evaluates a filter over
every row at once.

Rows are slots `0 .. len(columns) - 1`, meant to be the labels of the ANN index, so a mask is directly its
allow-list. `append` adds rows at the end, `replace` overwrites one row's metadata, `delete` leaves tombstones:
slots never move, a deleted slot matches no filter, and `replace` on it makes it a live row again (for indexes that
reuse deleted labels). The store is not thread-safe: apply events and evaluate masks from one thread, or under a
lock.

Each field path found in the metadata (`{"a": {"b": 1}}` gives `a` and `a.b`) has a column:

- per row, its kind (missing, null, boolean, number, string, array or other); a number as float64 (NaN when not a
  number, so numeric comparisons need no kind test); a boolean as int8 (-1 when not one); a string as an int32 code
  into the column's dictionary of strings (-1 when not one). The typed arrays are allocated when the first value of
  their kind arrives: a field that only ever holds strings costs 5 bytes a row.
- the elements of array values, in the same typed arrays, with the row that owns each. An operator matches a row
  when it matches the row's value or one of its elements, so evaluation is one vectorised test over the rows plus
  one over the elements, scattered back to their rows.

Strings are tested through their dictionary: equality is one code comparison, `$in`, ranges and `$match` compute
a table over the distinct strings (`$match` through a word index built on first use) and index it with the codes.
What deletes and replacements leave behind (dead array elements, unused strings) is compacted once it outweighs
what is in use. Columns are not dropped when their field disappears.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from events.analysis import Analyzer
from events.filters import (
    MAX_FIELD_PARTS,
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
    is_field_part,
)
from tributary.filtering import ORDER, Kind, as_number, kind_of, matches

Bools = npt.NDArray[np.bool_]

_COMPACT_MIN = 1024


def _equal(array: npt.NDArray[Any], value: Any) -> Bools:
    """`array == value`, typed (numpy's stubs type `==` on arrays as Any)."""
    return np.asarray(array == value, dtype=bool)


def _resized(array: npt.NDArray[Any], capacity: int, fill: Any) -> npt.NDArray[Any]:
    """`array` with `capacity` rows: cut, or grown with `fill`."""
    grown = np.full((capacity, *array.shape[1:]), fill, dtype=array.dtype)
    kept = min(capacity, len(array))
    grown[:kept] = array[:kept]
    return grown


class _Strings:
    """A column's dictionary: string <-> int32 code, shared by its row values and array elements."""

    def __init__(self) -> None:
        self.codes: dict[str, int] = {}
        self.values: list[str] = []
        self._array: npt.NDArray[np.object_] = np.empty(0, dtype=object)
        # Per analyzer (a dataset uses one), each term's codes, and how many codes that index has read.
        self._terms: dict[Analyzer, tuple[dict[str, list[int]], int]] = {}

    def code(self, text: str) -> int:
        code = self.codes.get(text)
        if code is None:
            code = self.codes[text] = len(self.values)
            self.values.append(text)
        return code

    def table(self) -> Bools:
        """False for each code, and one more at the end, which the code -1 (no string) indexes."""
        return np.zeros(len(self.values) + 1, dtype=bool)

    def member(self, strings: frozenset[str]) -> Bools:
        table = self.table()
        table[[code for text in strings if (code := self.codes.get(text)) is not None]] = True
        return table

    def ordered(self, op: RangeOp, bound: str) -> Bools:
        if len(self._array) != len(self.values):
            self._array = np.array(self.values, dtype=object)
        table = self.table()
        table[:-1] = ORDER[op](self._array, bound)
        return table

    def matching(self, terms: frozenset[str], analyzer: Analyzer) -> Bools:
        index, indexed = self._terms.get(analyzer, ({}, 0))
        for code in range(indexed, len(self.values)):
            for term in analyzer.term_set(self.values[code]):
                index.setdefault(term, []).append(code)
        self._terms[analyzer] = index, len(self.values)
        table = self.table()
        # No terms (only stop words) match nothing, as in `tributary.filtering.matches`.
        table[:-1] = bool(terms)
        for term in terms:
            has_term = self.table()
            has_term[index.get(term, [])] = True
            table &= has_term
        return table

    def keep(self, used: npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.int32]:
        """Drop the strings whose codes are not in `used`; answer the new code of each old one (and -1 for -1)."""
        renumber = np.full(len(self.values) + 1, -1, dtype=np.int32)
        renumber[used] = np.arange(len(used), dtype=np.int32)
        self.values = [self.values[code] for code in used.tolist()]
        self.codes = {text: code for code, text in enumerate(self.values)}
        self._array = np.empty(0, dtype=object)
        self._terms = {}
        return renumber


class _Values:
    """Scalar values in typed arrays, one slot each; `kind` says which array holds a slot's value."""

    def __init__(self, capacity: int, strings: _Strings) -> None:
        self.strings = strings
        self.kind = np.zeros(capacity, dtype=np.uint8)  # Kind.MISSING is 0
        self.num: npt.NDArray[np.float64] | None = None
        self.flag: npt.NDArray[np.int8] | None = None
        self.code: npt.NDArray[np.int32] | None = None

    def resize(self, capacity: int) -> None:
        self.kind = _resized(self.kind, capacity, Kind.MISSING)
        if self.num is not None:
            self.num = _resized(self.num, capacity, np.nan)
        if self.flag is not None:
            self.flag = _resized(self.flag, capacity, -1)
        if self.code is not None:
            self.code = _resized(self.code, capacity, -1)

    def take(self, keep: Bools) -> None:
        """Keep the slots where `keep` is true, in order, and nothing after them."""
        size = len(keep)
        self.kind = self.kind[:size][keep]
        if self.num is not None:
            self.num = self.num[:size][keep]
        if self.flag is not None:
            self.flag = self.flag[:size][keep]
        if self.code is not None:
            self.code = self.code[:size][keep]

    def put(self, slots: Sequence[int], values: Sequence[Any], kinds: Sequence[Kind]) -> None:
        """Write values of the given kinds into empty slots, one numpy assignment per typed array."""
        self.kind[slots] = kinds
        number_slots: list[int] = []
        numbers: list[float] = []
        flag_slots: list[int] = []
        flags: list[bool] = []
        code_slots: list[int] = []
        codes: list[int] = []
        for slot, value, kind in zip(slots, values, kinds, strict=True):
            if kind is Kind.STRING:
                code_slots.append(slot)
                codes.append(self.strings.code(value))
            elif kind is Kind.NUMBER:
                number_slots.append(slot)
                numbers.append(as_number(value))
            elif kind is Kind.BOOL:
                flag_slots.append(slot)
                flags.append(value)
        if number_slots:
            if self.num is None:
                self.num = np.full(len(self.kind), np.nan)
            self.num[number_slots] = numbers
        if flag_slots:
            if self.flag is None:
                self.flag = np.full(len(self.kind), -1, dtype=np.int8)
            self.flag[flag_slots] = flags
        if code_slots:
            if self.code is None:
                self.code = np.full(len(self.kind), -1, dtype=np.int32)
            self.code[code_slots] = codes

    def clear(self, slots: int | slice) -> None:
        self.kind[slots] = Kind.MISSING
        if self.num is not None:
            self.num[slots] = np.nan
        if self.flag is not None:
            self.flag[slots] = -1
        if self.code is not None:
            self.code[slots] = -1

    def equal(self, operand: Scalar, size: int) -> Bools:
        if operand is None:
            return _equal(self.kind[:size], Kind.NULL)
        if isinstance(operand, bool):
            return np.zeros(size, dtype=bool) if self.flag is None else _equal(self.flag[:size], int(operand))
        if isinstance(operand, float):
            return np.zeros(size, dtype=bool) if self.num is None else _equal(self.num[:size], operand)
        code = self.strings.codes.get(operand)
        if code is None or self.code is None:
            return np.zeros(size, dtype=bool)
        return _equal(self.code[:size], code)

    def member(self, values: ValueSet, size: int) -> Bools:
        hit = _equal(self.kind[:size], Kind.NULL) if values.null else np.zeros(size, dtype=bool)
        if values.bools and self.flag is not None:
            hit |= np.isin(self.flag[:size], [int(flag) for flag in values.bools])
        if values.numbers and self.num is not None:
            hit |= np.isin(self.num[:size], np.fromiter(values.numbers, dtype=np.float64))
        if values.strings and self.code is not None:
            hit |= self.strings.member(values.strings)[self.code[:size]]
        return hit

    def ordered(self, op: RangeOp, bound: float | str, size: int) -> Bools:
        if isinstance(bound, float):
            if self.num is None:
                return np.zeros(size, dtype=bool)
            return np.asarray(ORDER[op](self.num[:size], bound), dtype=bool)
        if self.code is None:
            return np.zeros(size, dtype=bool)
        return self.strings.ordered(op, bound)[self.code[:size]]

    def matching(self, terms: frozenset[str], analyzer: Analyzer, size: int) -> Bools:
        if self.code is None:
            return np.zeros(size, dtype=bool)
        return self.strings.matching(terms, analyzer)[self.code[:size]]


class _Column:
    """One field: its value in each row, and the elements of the rows whose value is an array."""

    def __init__(self, capacity: int) -> None:
        self.strings = _Strings()
        self.rows = _Values(capacity, self.strings)
        self.items = _Values(0, self.strings)
        self.owner = np.zeros(0, dtype=np.int64)  # the row of each element
        # Per row, where its elements start and how many there are; allocated with the first array value.
        self.spans: npt.NDArray[np.int64] | None = None
        self.item_count = 0
        self.dead_items = 0
        self.next_string_check = _COMPACT_MIN

    def resize(self, capacity: int) -> None:
        self.rows.resize(capacity)
        if self.spans is not None:
            self.spans = _resized(self.spans, capacity, 0)

    def put(self, rows: list[int], values: list[Any]) -> None:
        """Write the values of rows that have none in this column (new or erased rows)."""
        kinds = [kind_of(value) for value in values]
        self.rows.put(rows, values, kinds)
        arrays = [
            (row, value) for row, value, kind in zip(rows, values, kinds, strict=True) if kind is Kind.LIST
        ]
        if arrays:
            self._put_items(arrays)
        if len(self.strings.values) >= self.next_string_check:
            self._compact_strings()

    def clear(self, row: int) -> None:
        kind = self.rows.kind[row]
        if kind == Kind.LIST and self.spans is not None:
            start, count = (int(n) for n in self.spans[row])
            self.items.clear(slice(start, start + count))
            self.dead_items += count
        if kind != Kind.MISSING:
            self.rows.clear(row)
        if self.dead_items > max(_COMPACT_MIN, self.item_count // 2):
            self._compact_items()

    def evaluate(self, node: Eq | In | Range | Exists | Contains | Match, size: int) -> Bools:
        match node:
            case Exists(_, present):
                return np.logical_not(self._missing(size)) if present else self._missing(size)
            case Eq(_, operand):
                hit = self._some(size, lambda values, n: values.equal(operand, n))
                return hit | self._missing(size) if operand is None else hit
            case In(_, value_set):
                hit = self._some(size, lambda values, n: values.member(value_set, n))
                return hit | self._missing(size) if value_set.null else hit
            case Range(_, op, bound):
                return self._some(size, lambda values, n: values.ordered(op, bound, n))
            case Contains(_, operand):
                return self._scatter(np.zeros(size, dtype=bool), self.items.equal(operand, self.item_count))
            case Match(_, terms, analyzer):
                return self._some(size, lambda values, n: values.matching(terms, analyzer, n))

    def _missing(self, size: int) -> Bools:
        return _equal(self.rows.kind[:size], Kind.MISSING)

    def _some(self, size: int, test: Callable[[_Values, int], Bools]) -> Bools:
        """Rows whose value passes `test`, or one of whose elements does."""
        hit = test(self.rows, size)
        if self.item_count > self.dead_items:
            self._scatter(hit, test(self.items, self.item_count))
        return hit

    def _scatter(self, rows: Bools, items: Bools) -> Bools:
        rows[self.owner[: self.item_count][items]] = True
        return rows

    def _put_items(self, arrays: list[tuple[int, list[Any]]]) -> None:
        """Append the elements of array values after the last element, row after row."""
        rows = [row for row, _ in arrays]
        counts = [len(items) for _, items in arrays]
        items = [item for _, array in arrays for item in array]
        start, end = self.item_count, self.item_count + len(items)
        if end > len(self.owner):
            capacity = max(end, 2 * len(self.owner), 16)
            self.items.resize(capacity)
            self.owner = _resized(self.owner, capacity, -1)
        self.items.put(range(start, end), items, [kind_of(item) for item in items])
        self.owner[start:end] = np.repeat(rows, counts)
        if self.spans is None:
            self.spans = np.zeros((len(self.rows.kind), 2), dtype=np.int64)
        self.spans[rows, 0] = start + np.cumsum(counts) - counts
        self.spans[rows, 1] = counts
        self.item_count = end

    def _compact_items(self) -> None:
        # Elements are never of kind MISSING, except those cleared with their row.
        alive = np.logical_not(_equal(self.items.kind[: self.item_count], Kind.MISSING))
        if self.spans is not None:
            new_slot = np.cumsum(alive) - alive
            arrays = np.flatnonzero(_equal(self.rows.kind, Kind.LIST) & (self.spans[:, 1] > 0))
            self.spans[arrays, 0] = new_slot[self.spans[arrays, 0]]
        self.items.take(alive)
        self.owner = self.owner[: self.item_count][alive]
        self.item_count = len(self.owner)
        self.dead_items = 0

    def _compact_strings(self) -> None:
        codes = [values.code for values in (self.rows, self.items) if values.code is not None]
        used = np.unique(np.concatenate(codes))
        used = used[used >= 0]
        if 2 * len(used) <= len(self.strings.values):
            renumber = self.strings.keep(used)
            for values in (self.rows, self.items):
                if values.code is not None:
                    values.code = renumber[values.code]
        self.next_string_check = 2 * len(self.strings.values) + _COMPACT_MIN


class MetadataColumns:
    """The metadata of a dataset's rows, held by field in typed arrays for `mask`."""

    def __init__(self) -> None:
        self._size = 0
        self._live = np.zeros(0, dtype=bool)
        self._columns: dict[str, _Column] = {}

    def __len__(self) -> int:
        return self._size

    @property
    def live(self) -> Bools:
        """Which slots hold a row (and are not tombstones)."""
        view = self._live[: self._size]
        view.flags.writeable = False
        return view

    def append(self, rows: Sequence[dict[str, Any]]) -> range:
        """Add rows at the end; answer their slots."""
        start = self._size
        self._reserve(start + len(rows))
        self._size = start + len(rows)
        self._write(start, rows)
        self._live[start : self._size] = True
        return range(start, self._size)

    def replace(self, row: int, metadata: dict[str, Any]) -> None:
        """Give a row new metadata; a deleted row becomes live again."""
        self._check(row)
        self._erase(row)
        self._write(row, [metadata])
        self._live[row] = True

    def delete(self, rows: Sequence[int]) -> None:
        """Tombstone rows: they keep their slot and match nothing."""
        for row in rows:
            self._check(row)
            self._erase(row)
            self._live[row] = False

    def column(self, field: tuple[str, ...]) -> _Column | None:
        return self._columns.get(".".join(field))

    def _check(self, row: int) -> None:
        if not 0 <= row < self._size:
            raise IndexError(f"row {row} is not in 0..{self._size - 1}")

    def _reserve(self, size: int) -> None:
        if size <= len(self._live):
            return
        capacity = max(size, 2 * len(self._live), _COMPACT_MIN)
        self._live = _resized(self._live, capacity, False)
        for column in self._columns.values():
            column.resize(capacity)

    def _write(self, start: int, rows: Sequence[dict[str, Any]]) -> None:
        """Write the metadata of rows `start, start + 1, ...`, which must hold none: gathered by field first."""
        by_field: dict[str, tuple[list[int], list[Any]]] = {}
        for row, metadata in enumerate(rows, start):
            for field, value in _fields(metadata, "", 1):
                batch = by_field.get(field)
                if batch is None:
                    batch = by_field[field] = ([], [])
                batch[0].append(row)
                batch[1].append(value)
        for field, (slots, values) in by_field.items():
            column = self._columns.get(field)
            if column is None:
                column = self._columns[field] = _Column(len(self._live))
            column.put(slots, values)

    def _erase(self, row: int) -> None:
        for column in self._columns.values():
            column.clear(row)


def _fields(metadata: dict[str, Any], prefix: str, depth: int) -> Iterator[tuple[str, Any]]:
    """Every field path a filter can name in this metadata (see `tributary.filtering.resolve`), with its value."""
    for key, value in metadata.items():
        if is_field_part(key):
            yield prefix + key, value
            if isinstance(value, dict) and depth < MAX_FIELD_PARTS:
                yield from _fields(value, f"{prefix}{key}.", depth + 1)


def mask(node: FilterNode, columns: MetadataColumns) -> Bools:
    """One boolean per slot of `columns`: whether that row matches the filter (tombstones never do)."""
    hit = _evaluate(node, columns)
    hit &= columns.live
    return hit


def _evaluate(node: FilterNode, columns: MetadataColumns) -> Bools:
    size = len(columns)
    if isinstance(node, And):
        hit = np.ones(size, dtype=bool)
        for clause in node.clauses:
            hit &= _evaluate(clause, columns)
        return hit
    if isinstance(node, Or):
        hit = np.zeros(size, dtype=bool)
        for clause in node.clauses:
            hit |= _evaluate(clause, columns)
        return hit
    if isinstance(node, Not):
        return np.logical_not(_evaluate(node.clause, columns))
    column = columns.column(node.field)
    if column is None:
        # No row has this field, so every row answers as a row without it does.
        return np.full(size, matches(node, {}), dtype=bool)
    return column.evaluate(node, size)
