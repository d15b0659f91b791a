"""A LangChain `VectorStore` over a Tributary dataset (the SDK's `langchain` extra).

Texts are embedded on the client by a LangChain `Embeddings`; each document is stored as one record: its id,
the vector, the text and the metadata. Searches run on the server by vector, with LangChain's filter dict passed
as it is: Tributary's filter language (`{"field": value}`, `$and`, `$or`, `$not`, `$eq`, `$ne`, `$in`, `$nin`,
`$gt`/`$gte`/`$lt`/`$lte`, `$exists`, `$contains`) is the MongoDB style Chroma and most stores take, so a
filter written for them means the same here, and one Tributary does not know is refused with the path of the
bad clause (`InvalidRequest`).

Calls are blocking, over `Tributary`; LangChain's async methods run them on its executor. Reads see the store's
own writes (the client reads at `session` consistency with its last write's token).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, Self

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore

from tributary_client import models
from tributary_client.errors import NotFound
from tributary_client.sync import Tributary

Metric = Literal["cosine", "dot", "l2"]

_INCLUDE = ["metadata", "text"]


class TributaryVectorStore(VectorStore):
    """The documents of one Tributary dataset. `metric` is the dataset's, used to map scores to LangChain's
    relevance in [0, 1]; `create_dataset` (or `from_texts`) makes the dataset with the embedding's dimensions."""

    def __init__(
        self, client: Tributary, dataset: str, embedding: Embeddings, *, metric: Metric = "cosine"
    ) -> None:
        self.client = client
        self.dataset = dataset
        self._embedding = embedding
        self._metric: Metric = metric

    @property
    def embeddings(self) -> Embeddings:
        return self._embedding

    def create_dataset(self, **options: Any) -> None:
        """Create the dataset if it does not exist, sized by embedding a probe text; `options` go to
        `Tributary.create_dataset` (`metadata_schema`, `text_field`, ...)."""
        try:
            self.client.get_dataset(self.dataset)
        except NotFound:
            dimensions = len(self._embedding.embed_query("dimensions"))
            self.client.create_dataset(self.dataset, dimensions, metric=self._metric, **options)

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[Any, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        client: Tributary | None = None,
        dataset: str = "langchain",
        metric: Metric = "cosine",
        **kwargs: Any,
    ) -> Self:
        """A store over `dataset` (created if missing) holding `texts`."""
        if client is None:
            raise ValueError("from_texts needs client=Tributary(url, api_key)")
        store = cls(client, dataset, embedding, metric=metric)
        store.create_dataset()
        store.add_texts(texts, metadatas, ids=ids, **kwargs)
        return store

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[Any, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        batch_size: int = 1000,
        **kwargs: Any,
    ) -> list[str]:
        """Embed and upsert `texts`; a text given an id that exists replaces it. Missing ids (None in `ids`:
        `add_documents` passes the documents' ids, some of which may be None) are made up (uuid4), and the ids
        are returned in order."""
        texts = list(texts)
        vectors = self._embedding.embed_documents(texts)
        given: Sequence[str | None] = ids or [None] * len(texts)
        chosen = [str(i) if i is not None else str(uuid.uuid4()) for i in given]
        metadata: Sequence[dict[Any, Any] | None] = [None] * len(texts) if metadatas is None else metadatas
        records = (
            {"id": i, "vector": v, "text": t, "metadata": m}
            for i, v, t, m in zip(chosen, vectors, texts, metadata, strict=True)
        )
        self.client.upsert_many(self.dataset, records, batch_size=batch_size)
        return chosen

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete these ids (missing ones are no error), or with `filter=` the documents it matches."""
        if ids is not None:
            if ids:
                self.client.delete(self.dataset, ids=ids)
        elif kwargs.get("filter"):
            self.client.delete(self.dataset, filter=kwargs["filter"])
        else:
            raise ValueError("delete needs ids or a filter")
        return True

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        return [_document(view) for view in self.client.get(self.dataset, list(ids), include=_INCLUDE)]

    def similarity_search(
        self, query: str, k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k, filter=filter, **kwargs)]

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """The `k` nearest documents with the server's score: cosine similarity, dot product, or Euclidean
        distance for `l2` (smaller is nearer)."""
        vector = self._embedding.embed_query(query)
        return self.similarity_search_by_vector_with_score(vector, k, filter=filter, **kwargs)

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[Document]:
        return [
            doc
            for doc, _ in self.similarity_search_by_vector_with_score(embedding, k, filter=filter, **kwargs)
        ]

    def similarity_search_by_vector_with_score(
        self, embedding: list[float], k: int = 4, filter: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """`kwargs` are the search request's other fields (`score_threshold`, `consistency`, ...)."""
        answer = self.client.search(self.dataset, embedding, k=k, filter=filter, include=_INCLUDE, **kwargs)
        return [(_document(view), view.score or 0.0) for view in answer.results]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        # The server answers similarities (cosine, dot: higher is nearer, -1 to 1 for unit vectors) where
        # LangChain's own functions expect distances; only l2's distance fits them as it is.
        if self._metric == "l2":
            return self._euclidean_relevance_score_fn
        return _similarity_relevance


def _similarity_relevance(score: float) -> float:
    return (score + 1.0) / 2.0


def _document(view: models.VectorView) -> Document:
    return Document(id=view.id, page_content=view.text or "", metadata=view.metadata or {})
