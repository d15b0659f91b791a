"""Hybrid search beats vector-only and text-only search through the query API, on a real labelled set: the
summaries of Python standard-library docstrings as queries, their bodies as the documents, embedded by the
server with the packaged all-MiniLM-L6-v2 (tests/retrieval_corpus.py builds the set).

On Python 3.11 (736 docstrings, every summary a query) the vector side is the stronger retriever; hybrid search
with the default settings (the dataset's default text analysis, min-max fusion with alpha 0.55, chosen by
bench/relevance.py) beats both sides. The other fusions are reported (the figures print with -s).
"""

from __future__ import annotations

import httpx
import pytest

from entrypoints.http_app import create_app
from events import LocalEmbedderConfig
from events.vectors import pack
from tests.helpers import serving
from tests.retrieval_corpus import mrr, recall_at, stdlib_corpus, title_queries
from tributary.embedding.local import LocalEmbedder
from tributary.settings import Settings

pytestmark = pytest.mark.local_model

MODES: dict[str, dict[str, object]] = {
    "vector": {"mode": "vector"},
    "text": {"mode": "text"},
    "hybrid rrf k=60": {"mode": "hybrid", "fusion": "rrf", "rrf_k": 60},
    "hybrid weighted alpha=0.7": {"mode": "hybrid", "fusion": "weighted", "alpha": 0.7},
    "hybrid dbsf alpha=0.7": {"mode": "hybrid", "fusion": "dbsf", "alpha": 0.7},
    "hybrid defaults": {"mode": "hybrid"},
}


async def ranked(client: httpx.AsyncClient, vector: str, text: str, mode: dict[str, object]) -> list[str]:
    answer = await client.post(
        "/api/v1/datasets/stdlib/search",
        json={"vector": vector, "text": text, "k": 10, "include": [], **mode},
    )
    assert answer.status_code == 200, answer.text
    return [result["id"] for result in answer.json()["results"]]


async def test_hybrid_search_beats_vector_only_and_text_only(embedded_settings: Settings) -> None:
    docs = stdlib_corpus()
    queries = title_queries(docs)
    assert 300 <= len(docs) <= 1000
    settings = embedded_settings.model_copy(update={"wait_timeout_s": 300})
    async with serving(create_app(settings)) as client:
        created = await client.post(
            "/api/v1/datasets?wait=true",
            json={
                "name": "stdlib",
                "dimensions": 384,
                "embedder": {"kind": "local", "model": "all-minilm-l6-v2"},
            },
        )
        assert created.json()["status"] == "applied", created.text
        # Text-only records: the server embeds the docstring bodies.
        written = await client.post(
            "/api/v1/datasets/stdlib/vectors?wait=true",
            json={"vectors": [{"id": doc.id, "text": doc.body} for doc in docs]},
            timeout=300,
        )
        assert written.json()["status"] == "applied", written.text

        # The query vectors are embedded here in one batch (the API would embed each query text alone).
        vectors = await LocalEmbedder(LocalEmbedderConfig()).embed([query.text for query in queries])
        relevant = [query.relevant for query in queries]
        figures = {}
        for name, mode in MODES.items():
            rankings = [
                await ranked(client, pack(vector[None, :])["data"], query.text, mode)
                for query, vector in zip(queries, vectors, strict=True)
            ]
            figures[name] = (recall_at(10, rankings, relevant), mrr(rankings, relevant))
    for name, (recall, reciprocal) in figures.items():
        print(f"{name:27s} recall@10 {recall:.3f}  MRR {reciprocal:.3f}")
    for measure in (0, 1):
        hybrid = figures["hybrid defaults"][measure]
        assert hybrid > figures["vector"][measure] and hybrid > figures["text"][measure], figures
