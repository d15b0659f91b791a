"""Text analysis (events/analysis.py): folding, tokenization, stop words and stemming, and that BM25 and `$match`
analyse alike."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from events.analysis import DEFAULT_ANALYSIS, PLAIN_WORDS, TextAnalysis, analyzer_for
from events.commands import CreateDatasetPayload
from events.filters import FilterError, parse_filter
from query_api.projection import DatasetProjection
from query_api.text_index import TextIndex
from schemas.datasets import CreateDatasetRequest
from tributary.filtering import matches
from tributary.metadata_columns import MetadataColumns, mask
from tributary.storage import DatasetSpec

ENGLISH = analyzer_for(DEFAULT_ANALYSIS)


def test_stemming_makes_one_term_of_a_words_forms() -> None:
    assert ENGLISH.terms("running runs run") == ["run", "run", "run"]
    assert ENGLISH.terms("Libraries library") == ["librari", "librari"]
    assert analyzer_for(TextAnalysis(language="german", stop_words=False)).terms("Häuser Haus") == [
        "haus",
        "haus",
    ]
    assert analyzer_for(TextAnalysis(language=None, stop_words=False)).terms("running runs") == [
        "running",
        "runs",
    ]


def test_stop_words_are_dropped() -> None:
    assert ENGLISH.terms("The art of the deal, and it's not a game") == ["art", "deal", "game"]
    assert analyzer_for(TextAnalysis(stop_words=False)).terms("the art") == ["the", "art"]
    # A list of one's own, folded like the texts.
    custom = analyzer_for(TextAnalysis(language=None, stop_words=("Über", "und")))
    assert custom.terms("über Katzen und Hunde") == ["katzen", "hunde"]


def test_stop_words_need_a_list() -> None:
    with pytest.raises(ValidationError, match="no stop word list ships for french"):
        TextAnalysis(language="french")
    assert TextAnalysis(language="french", stop_words=False).language == "french"


def test_unicode_and_ascii_folding() -> None:
    assert ENGLISH.terms("Café NAÏVE Straße ﬁle") == ["cafe", "naiv", "strass", "file"]
    unfolded = analyzer_for(TextAnalysis(language=None, stop_words=False, ascii_folding=False))
    assert unfolded.terms("Café ﬁle") == ["café", "file"]
    # Without Unicode folding the ligature is only case-folded, as before analysis was configurable.
    assert analyzer_for(PLAIN_WORDS).terms("Café ²") == ["café", "²"]
    assert unfolded.terms("²") == ["2"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gtk3 libraries", ["gtk3", "librari"]),
        ("built for x86-64", ["built", "x86-64", "x86", "64"]),
        ("x86_64", ["x86_64", "x86", "64"]),
        ("os.path.join()", ["os.path.join", "os", "path", "join"]),
        ("python 3.11", ["python", "3.11", "3", "11"]),
        ("TCP/IP", ["tcp/ip", "tcp", "ip"]),
        # Identifiers are not stemmed, their alphabetic parts are.
        ("utf-8 encodings", ["utf-8", "utf", "8", "encod"]),
        ("--all-files", ["all-files", "all", "file"]),
        (" \t!?", []),
    ],
)
def test_identifiers_stay_findable(text: str, expected: list[str]) -> None:
    assert ENGLISH.terms(text) == expected


def test_plain_words_split_identifiers() -> None:
    assert analyzer_for(PLAIN_WORDS).terms("The x86-64 gtk3 Running") == [
        "the",
        "x86",
        "64",
        "gtk3",
        "running",
    ]


def select(raw: dict[str, Any], rows: list[dict[str, Any]], analysis: TextAnalysis) -> list[int]:
    """The rows a filter keeps by the dataset's analysis, checking the row and columnar evaluators agree."""
    node = parse_filter(raw, analyzer_for(analysis))
    by_row = [i for i, row in enumerate(rows) if matches(node, row)]
    columns = MetadataColumns()
    columns.append(rows)
    assert np.flatnonzero(mask(node, columns)).tolist() == by_row
    return by_row


ROWS: list[dict[str, Any]] = [
    {"t": "Running the tests"},
    {"t": ["builds for x86-64", "other"]},
    {"t": "x86 64 bits"},
    {"t": "Café au lait"},
]


def test_match_uses_the_datasets_analysis() -> None:
    assert select({"t": {"$match": "runs test"}}, ROWS, DEFAULT_ANALYSIS) == [0]
    assert select({"t": {"$match": "runs test"}}, ROWS, PLAIN_WORDS) == []
    assert select({"t": {"$match": "x86-64"}}, ROWS, DEFAULT_ANALYSIS) == [1]
    assert select({"t": {"$match": "x86-64"}}, ROWS, PLAIN_WORDS) == [1, 2]
    assert select({"t": {"$match": "x86"}}, ROWS, DEFAULT_ANALYSIS) == [1, 2]
    assert select({"t": {"$match": "CAFE"}}, ROWS, DEFAULT_ANALYSIS) == [3]
    # Only stop words: nothing matches (a query without a word is refused, as before).
    assert select({"t": {"$match": "the"}}, ROWS, DEFAULT_ANALYSIS) == []
    with pytest.raises(FilterError, match="at least one word"):
        parse_filter({"t": {"$match": "?!"}}, ENGLISH)


def test_match_and_bm25_agree_in_a_projection() -> None:
    projection = DatasetProjection(2, "cosine", text_field="title", text_analysis=DEFAULT_ANALYSIS)
    texts = ["Running the tests on x86-64", "A walk in the park", None]
    metadata = [{"title": t} if t else {} for t in texts]
    projection.upsert(["a", "b", "c"], np.eye(3, 2, dtype=np.float32), [None] * 3, metadata)
    found = projection.text_search("runs test", 10, None)
    assert [projection.id_of(hit.slot) for hit in found] == ["a"]
    allowed = projection.allowed(parse_filter({"title": {"$match": "runs test"}}, projection.analyzer))
    assert allowed is not None and np.flatnonzero(allowed).tolist() == [found[0].slot]


def test_text_index_uses_its_analyzer() -> None:
    index = TextIndex(analyzer=ENGLISH)
    index.set_many([0, 1], ["the libraries", "a library of gtk3 widgets"])
    slots, _ = index.search("Library", 10)
    assert sorted(slots.tolist()) == [0, 1]
    assert index.search("the", 10)[0].tolist() == []
    assert index.search("GTK3", 10)[0].tolist() == [1]


def test_new_datasets_get_the_default_and_old_ones_keep_plain_words() -> None:
    assert CreateDatasetRequest(name="d", dimensions=3).text_analysis == DEFAULT_ANALYSIS
    # A CreateDataset command or a stored spec written before the field existed.
    assert CreateDatasetPayload(dimensions=3).text_analysis == PLAIN_WORDS
    stored = json.loads(DatasetSpec(dimensions=3, metric="cosine").to_json())
    del stored["text_analysis"]
    assert DatasetSpec.from_json(json.dumps(stored)).text_analysis == PLAIN_WORDS
    spec = DatasetSpec(
        dimensions=3, metric="cosine", text_analysis=TextAnalysis(language="dutch", stop_words=())
    )
    assert DatasetSpec.from_json(spec.to_json()) == spec


def test_a_bad_analysis_is_refused() -> None:
    with pytest.raises(ValidationError):
        CreateDatasetRequest.model_validate(
            {"name": "d", "dimensions": 3, "text_analysis": {"language": "klingon"}}
        )
    with pytest.raises(ValidationError):
        CreateDatasetRequest.model_validate(
            {"name": "d", "dimensions": 3, "text_analysis": {"stemming": True}}
        )


def test_threads_stem_alike() -> None:
    words = [
        f"{stem}{ending}"
        for stem in ("connect", "run", "librar", "walk")
        for ending in ("ing", "s", "ed", "y")
    ]
    expected = [ENGLISH.terms(word) for word in words]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(20):
            assert list(pool.map(ENGLISH.terms, words * 50)) == expected * 50
