"""The LangChain vector store (the SDK's `langchain` extra) against a real embedded server: langchain-tests'
standard vector-store suite, and what the suite does not cover (filters, scores, from_texts)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from langchain_core.documents import Document
from langchain_tests.integration_tests import VectorStoreIntegrationTests
from tributary_client import InvalidRequest, Tributary
from tributary_client.langchain import TributaryVectorStore

from tests.helpers import ADMIN_KEY


@pytest.fixture
def client(embedded_url: str) -> Iterator[Tributary]:
    with Tributary(embedded_url, ADMIN_KEY) as client:
        yield client


class TestStandardSuite(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, client: Tributary) -> TributaryVectorStore:
        store = TributaryVectorStore(client, f"lc-{uuid.uuid4().hex[:8]}", self.get_embeddings())
        store.create_dataset()
        return store


def test_filters_scores_and_from_texts(client: Tributary) -> None:
    store = TributaryVectorStore.from_texts(
        ["apples", "pears", "plums"],
        VectorStoreIntegrationTests.get_embeddings(),
        [{"kind": "fruit", "n": 1}, {"kind": "fruit", "n": 2}, {"kind": "stone", "n": 3}],
        ids=["a", "p", "s"],
        client=client,
        dataset="fruit",
    )
    assert [d.id for d in store.similarity_search("apples", k=3, filter={"kind": "stone"})] == ["s"]
    near = store.similarity_search("apples", k=3, filter={"$or": [{"n": {"$gte": 2}}, {"kind": "none"}]})
    assert sorted(d.id or "" for d in near) == ["p", "s"]
    (best, score), *_ = store.similarity_search_with_score("apples", k=3)
    assert best == Document(id="a", page_content="apples", metadata={"kind": "fruit", "n": 1})
    assert score == pytest.approx(1.0, abs=1e-5)  # cosine similarity with itself
    (_, relevance), *_ = store.similarity_search_with_relevance_scores("apples", k=1)
    assert relevance == pytest.approx(1.0, abs=1e-5)
    store.delete(filter={"n": {"$lt": 2}})
    assert store.get_by_ids(["a", "p"]) == [
        Document(id="p", page_content="pears", metadata={"kind": "fruit", "n": 2})
    ]
    with pytest.raises(InvalidRequest) as refused:
        store.similarity_search("apples", filter={"n": {"$between": [1, 2]}})
    assert refused.value.status == 422
