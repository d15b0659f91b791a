"""The standard-library retrieval set is well formed whatever the interpreter's docstrings say, and its metrics
score rankings as their definitions say."""

from __future__ import annotations

import math

import pytest

from tests.retrieval_corpus import (
    MAX_BODY_WORDS,
    MIN_BODY_WORDS,
    MIN_TITLE_WORDS,
    mrr,
    ndcg_at,
    recall_at,
    stdlib_corpus,
    title_queries,
)


def test_the_set_is_sizeable_and_every_query_has_exactly_one_answer() -> None:
    docs = stdlib_corpus()
    # Bounds, not counts: each Python version documents its standard library a little differently.
    assert 300 <= len(docs) <= 1000
    assert len({doc.id for doc in docs}) == len(docs)
    assert len({doc.title.lower() for doc in docs}) == len(docs)
    assert len({doc.body for doc in docs}) == len(docs)
    for doc in docs:
        assert len(doc.title.split()) >= MIN_TITLE_WORDS, doc
        assert MIN_BODY_WORDS <= len(doc.body.split()) <= MAX_BODY_WORDS, doc


def test_the_set_is_the_same_on_every_build_and_limit_takes_its_head() -> None:
    docs = stdlib_corpus()
    assert stdlib_corpus() == docs
    assert stdlib_corpus(limit=50) == docs[:50]


def test_docstring_summaries_become_titles_and_signatures_do_not() -> None:
    docs = {doc.id: doc for doc in stdlib_corpus()}
    dumps = docs["json.dumps"]
    assert dumps.title == "Serialize ``obj`` to a JSON formatted ``str``."
    assert dumps.body.startswith("If ``skipkeys`` is true")
    # C functions often open with their signature ("pack(format, v1, v2, ...) -> bytes"), which names no task.
    assert "struct.pack" not in docs
    assert not any("->" in doc.title or doc.title.split()[0].endswith(")") for doc in docs.values())


def test_queries_are_every_title_or_an_even_sample_of_them() -> None:
    docs = stdlib_corpus()
    every = title_queries(docs)
    assert [(query.text, query.relevant) for query in every] == [(doc.title, doc.id) for doc in docs]
    sample = title_queries(docs, count=200)
    positions = [[doc.id for doc in docs].index(query.relevant) for query in sample]
    assert len(set(positions)) == 200 and positions == sorted(positions)
    assert positions[0] == 0 and positions[-1] >= len(docs) - len(docs) // 200 - 1
    assert all(query.text == docs[position].title for query, position in zip(sample, positions, strict=True))


RANKINGS = [["a", "b", "c"], ["d", "e", "f"], ["g", "h"]]
RELEVANT = ["a", "f", "x"]


def test_recall_counts_answers_within_the_first_k() -> None:
    assert recall_at(1, RANKINGS, RELEVANT) == pytest.approx(1 / 3)
    assert recall_at(3, RANKINGS, RELEVANT) == pytest.approx(2 / 3)


def test_mrr_averages_reciprocal_ranks_with_zero_for_a_missing_answer() -> None:
    assert mrr(RANKINGS, RELEVANT) == pytest.approx((1 + 1 / 3 + 0) / 3)


def test_ndcg_discounts_by_log_rank_and_ignores_answers_past_k() -> None:
    assert ndcg_at(3, RANKINGS, RELEVANT) == pytest.approx((1 + 1 / math.log2(4)) / 3)
    assert ndcg_at(2, RANKINGS, RELEVANT) == pytest.approx(1 / 3)


def test_metrics_refuse_mismatched_or_empty_input() -> None:
    with pytest.raises(ValueError, match="2 rankings for 3 queries"):
        mrr(RANKINGS[:2], RELEVANT)
    with pytest.raises(ValueError, match="no queries"):
        recall_at(10, [], [])
