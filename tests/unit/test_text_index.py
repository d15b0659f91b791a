"""The BM25 text index against a brute-force BM25 written here, on hand-made and random corpora."""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events.analysis import PLAIN_WORDS, analyzer_for
from query_api.text_index import TextIndex

# A NaN or an overflow in the scoring is a bug even where it would not change a result.
pytestmark = pytest.mark.filterwarnings("error")

K1, B = 1.2, 0.75
REL = 1e-9


class Oracle:
    """BM25 by its definition, recomputing every statistic at each search."""

    def __init__(self, k1: float = K1, b: float = B) -> None:
        self.k1, self.b = k1, b
        self.docs: dict[int, Counter[str]] = {}

    def set(self, slot: int, text: str | None) -> None:
        counts = Counter(re.findall(r"\w+", (text or "").casefold()))
        if counts:
            self.docs[slot] = counts
        else:
            self.docs.pop(slot, None)

    def delete(self, slot: int) -> None:
        self.docs.pop(slot, None)

    def set_many(self, slots: list[int], texts: list[str | None]) -> None:
        for slot, text in zip(slots, texts, strict=True):
            self.set(slot, text)

    def scores(self, query: str) -> dict[int, float]:
        terms = set(re.findall(r"\w+", query.casefold()))
        n = len(self.docs)
        if not n:
            return {}
        avglen = sum(c.total() for c in self.docs.values()) / n
        df = {t: sum(t in c for c in self.docs.values()) for t in terms}
        found = {}
        for slot, counts in self.docs.items():
            score = 0.0
            for t in terms:
                tf = counts[t]
                if tf:
                    idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
                    norm = self.k1 * (1 - self.b + self.b * counts.total() / avglen)
                    score += idf * tf * (self.k1 + 1) / (tf + norm)
            if score > 0:
                found[slot] = score
        return found


def check(index: TextIndex, oracle: Oracle, query: str, k: int, allowed: np.ndarray | None) -> None:
    slots, scores = index.search(query, k, allowed)
    expected = {
        slot: score
        for slot, score in oracle.scores(query).items()
        if allowed is None or (slot < len(allowed) and allowed[slot])
    }
    ranked = sorted(expected.values(), reverse=True)
    assert len(slots) == min(k, len(expected))
    assert scores.tolist() == pytest.approx(ranked[:k], rel=REL)
    for slot, score in zip(slots.tolist(), scores.tolist(), strict=True):
        assert score == pytest.approx(expected[slot], rel=REL)
    # Best first, ties by slot, and a search for fewer is a prefix of a search for more.
    found = list(zip(scores.tolist(), slots.tolist(), strict=True))
    assert found == sorted(found, key=lambda pair: (-pair[0], pair[1]))
    more_slots, more_scores = index.search(query, k + 5, allowed)
    assert more_slots[:k].tolist() == slots.tolist()
    assert more_scores[:k].tolist() == scores.tolist()


def bm25(tf: int, length: int, avglen: float, n: int, df: int) -> float:
    return math.log(1 + (n - df + 0.5) / (df + 0.5)) * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * length / avglen))


def test_scores_of_a_small_corpus() -> None:
    index = TextIndex()
    index.set(0, "the cat sat")
    index.set(1, "the dog and the cat")
    index.set(4, "a dog")
    avglen = 10 / 3

    slots, scores = index.search("cat", 10)
    assert slots.tolist() == [0, 1]
    assert scores.tolist() == pytest.approx([bm25(1, 3, avglen, 3, 2), bm25(1, 5, avglen, 3, 2)], rel=REL)

    slots, scores = index.search("dog THE", 10)
    the_1 = bm25(2, 5, avglen, 3, 2)
    assert slots.tolist() == [1, 4, 0]
    assert scores.tolist() == pytest.approx(
        [the_1 + bm25(1, 5, avglen, 3, 2), bm25(1, 2, avglen, 3, 2), bm25(1, 3, avglen, 3, 2)], rel=REL
    )


def test_a_word_in_every_document_still_scores() -> None:
    index = TextIndex()
    index.set_many([0, 1, 2], ["same words", "same", "same same"])
    slots, scores = index.search("same", 10)
    assert slots.tolist() == [2, 1, 0]
    assert (scores > 0).all()


def test_repeating_a_word_in_the_query_does_not_weigh_it_more() -> None:
    index = TextIndex()
    index.set_many([0, 1], ["red apple", "green pear"])
    assert index.search("apple apple pear", 2)[1].tolist() == index.search("apple pear", 2)[1].tolist()


def test_queries_that_find_nothing() -> None:
    index = TextIndex()
    assert index.search("anything", 5)[0].tolist() == []
    index.set(0, "some text")
    for query in ("", "!!!", "unknown", "tex"):
        slots, scores = index.search(query, 5)
        assert (slots.tolist(), scores.tolist()) == ([], [])
    assert index.search("text", 0)[0].tolist() == []
    with pytest.raises(ValueError):
        index.search("text", -1)


def test_set_replaces_and_empty_texts_remove() -> None:
    index = TextIndex()
    index.set(3, "old words")
    index.set(3, "new words")
    assert index.search("old", 5)[0].tolist() == []
    assert index.search("new", 5)[0].tolist() == [3]
    assert len(index) == 1 and 3 in index
    for empty in (None, "", " -- "):
        index.set(3, "back")
        index.set(3, empty)
        assert 3 not in index and len(index) == 0
        assert index.search("back", 5)[0].tolist() == []
    index.delete(3)
    index.delete(99)
    assert 99 not in index and "3" not in index and -1 not in index


def test_a_freed_slot_and_a_forgotten_word_are_reused() -> None:
    index = TextIndex()
    index.set(0, "alpha")
    index.delete(0)
    index.set(0, "beta")
    index.set(1, "gamma")
    assert index.search("alpha", 5)[0].tolist() == []
    assert index.search("beta", 5)[0].tolist() == [0]
    assert index.search("gamma", 5)[0].tolist() == [1]


def test_set_many_lets_the_last_text_of_a_slot_win_and_replaces() -> None:
    index = TextIndex()
    index.set_many([0, 1], ["kept", "replaced"])
    index.set_many(np.array([1, 2, 2, 0]), ["one", "first", "second", None])
    assert 0 not in index and len(index) == 2
    assert index.search("replaced first kept", 5)[0].tolist() == []
    assert index.search("one second", 5)[0].tolist() == [1, 2]
    with pytest.raises(ValueError):
        index.set_many([0], [])


def test_the_allow_mask_bounds_the_search() -> None:
    index = TextIndex()
    index.set_many(range(100), ["word"] * 100)
    mask = np.zeros(50, np.bool_)
    mask[[3, 7, 49]] = True
    assert index.search("word", 10, mask)[0].tolist() == [3, 7, 49]
    longer = np.ones(500, np.bool_)
    assert index.search("word", 3, longer)[0].tolist() == [0, 1, 2]
    assert index.search("word", 3, np.zeros(0, np.bool_))[0].tolist() == []
    with pytest.raises(ValueError):
        index.search("word", 3, np.ones(100, np.int8))
    with pytest.raises(ValueError):
        index.search("word", 3, np.ones((10, 10), np.bool_))


def test_bad_slots_and_parameters_are_refused() -> None:
    index = TextIndex()
    with pytest.raises(ValueError):
        index.set(-1, "text")
    index.set(0, "kept")
    with pytest.raises(ValueError):
        index.set_many([0, -2], [None, "text"])
    assert index.search("kept", 1)[0].tolist() == [0]
    for k1, b in ((0, 0.75), (1.2, -0.1), (1.2, 1.5)):
        with pytest.raises(ValueError):
            TextIndex(k1, b)


@pytest.mark.parametrize(("k1", "b"), [(K1, B), (0.5, 1.0)])
def test_many_replacements_of_the_same_words(k1: float, b: float) -> None:
    # Each replacement leaves a stale entry behind in every word of the old text, which compaction clears.
    index, oracle = TextIndex(k1, b), Oracle(k1, b)
    rng = np.random.default_rng(0)
    vocabulary = [f"w{i}" for i in range(30)]
    for step in range(3000):
        slot = int(rng.integers(0, 200))
        text = " ".join(rng.choice(vocabulary, int(rng.integers(0, 12))))
        index.set(slot, text)
        oracle.set(slot, text)
        if step % 500 == 0:
            check(index, oracle, "w0 w3 w29", 10, None)
    for query in ("w0", "w1 w2", "w5 w6 w7 w8"):
        check(index, oracle, query, 10, None)
        check(index, oracle, query, 10, rng.random(200) < 0.2)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello, World!", ["hello", "world"]),
        ("Straße STRASSE", ["strasse", "strasse"]),
        ("snake_case and kebab-case", ["snake_case", "and", "kebab", "case"]),
        ("python 3.11", ["python", "3", "11"]),
        ("naïve café ΣΊΣΥΦΟΣ", ["naïve", "café", "σίσυφοσ"]),
        ("日本語のテキスト", ["日本語のテキスト"]),
        (" \t\n!?", []),
    ],
)
def test_plain_words_are_the_case_folded_runs_of_word_characters(text: str, expected: list[str]) -> None:
    # The analysis of the datasets created before it was configurable, which the oracle above also uses.
    assert analyzer_for(PLAIN_WORDS).terms(text) == expected
    assert TextIndex().analyzer.analysis == PLAIN_WORDS


VOCABULARY = ["apple", "Apple", "APPLE", "banana", "straße", "STRASSE", "x_1", "42", "δέλτα", "日本"]
texts = st.one_of(
    st.none(),
    st.just(" !? "),
    st.lists(
        st.tuples(st.sampled_from(VOCABULARY), st.sampled_from([" ", ", ", "-", "\n", "."])), max_size=10
    ).map(lambda parts: "".join(word + sep for word, sep in parts)),
)
slots = st.integers(0, 24)
# An operation is a method name and its arguments, applied alike to the index and the oracle.
operations = st.one_of(
    st.tuples(st.just("set"), st.tuples(slots, texts)),
    st.tuples(st.just("delete"), st.tuples(slots)),
    st.lists(st.tuples(slots, texts), max_size=8).map(
        lambda batch: ("set_many", ([slot for slot, _ in batch], [text for _, text in batch]))
    ),
)
queries = st.lists(st.sampled_from([*VOCABULARY, "unknown", "!"]), min_size=1, max_size=4).map(" ".join)
masks = st.one_of(st.none(), st.lists(st.booleans(), max_size=30).map(lambda bits: np.array(bits, np.bool_)))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([(K1, B), (0.5, 1.0), (2.0, 0.0)]), st.lists(operations, max_size=30), st.data())
def test_matches_brute_force_bm25(
    params: tuple[float, float], ops: list[tuple[str, tuple[object, ...]]], data: st.DataObject
) -> None:
    index, oracle = TextIndex(*params), Oracle(*params)
    for name, args in ops:
        getattr(index, name)(*args)
        getattr(oracle, name)(*args)
        assert len(index) == len(oracle.docs)
        assert all((slot in index) == (slot in oracle.docs) for slot in range(26))
        check(index, oracle, data.draw(queries), data.draw(st.integers(1, 8)), data.draw(masks))


def test_a_large_corpus_with_ties() -> None:
    # Enough slots for the top-k selection to work from a floor, and many equal scores at that floor.
    index, oracle = TextIndex(), Oracle()
    rng = np.random.default_rng(1)
    vocabulary = [f"w{i}" for i in range(50)]
    batch = {slot: " ".join(rng.choice(vocabulary, int(rng.integers(1, 6)))) for slot in range(5000)}
    batch.update({slot: "tied" for slot in range(3000, 5000, 7)})
    index.set_many(list(batch), list(batch.values()))
    oracle.set_many(list(batch), list(batch.values()))
    assert index.search("tied", 4)[0].tolist() == [3000, 3007, 3014, 3021]
    for query in ("w0", "w1 w2", "w3 w4 w5 tied", "w49"):
        for k in (1, 10, 100):
            check(index, oracle, query, k, None)
            check(index, oracle, query, k, rng.random(5000) < 0.05)
