"""Named vectors as pure logic: the dataset definition's rules, the contract's compatibility with commands and
events written before named vectors, the dense form of a field, a projection's spaces, the fusion of any number
of inputs, the search request's rules, and a split upsert's parts."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from command_api.splitting import split_command
from events import UpsertVectors, parse_command, parse_event
from events.commands import (
    MAX_VECTOR_FIELDS,
    CreateDatasetPayload,
    FieldVectors,
    UpsertVectorsPayload,
    VectorField,
    dense_default,
    dense_named_vectors,
)
from events.filters import parse_filter
from events.vectors import pack
from query_api.fusion import dbsf, dbsf_of, min_max, min_max_of
from query_api.projection import DatasetProjection
from schemas.search import SearchRequest
from tributary.storage import DatasetSpec

ENVELOPE = {"id": "8c7d5f0e-6a43-4bde-9a59-3f1a6c2e0b11", "tenant": "default", "dataset": "d"}


def definition(**extra: Any) -> CreateDatasetPayload:
    return CreateDatasetPayload.model_validate({"dimensions": 4, **extra})


def test_named_fields_are_declared_with_their_own_width_metric_and_index() -> None:
    made = definition(vectors={"image": {"dimensions": 6, "metric": "l2", "index": {"m": 8}}})
    assert made.vectors["image"].dimensions == 6 and made.vectors["image"].metric == "l2"
    assert made.vectors["image"].index.m == 8 and made.vectors["image"].embedder is None
    assert definition().vectors == {}


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"vectors": {"vector": {"dimensions": 2}}}, "default vector"),
        ({"metadata_schema": {"image": "string"}, "vectors": {"image": {"dimensions": 2}}}, "metadata field"),
        ({"text_field": "image", "vectors": {"image": {"dimensions": 2}}}, "metadata field"),
        ({"vectors": {f"f{i}": {"dimensions": 2} for i in range(MAX_VECTOR_FIELDS + 1)}}, "at most"),
        ({"vectors": {"a.b": {"dimensions": 2}}}, "pattern"),
        ({"vectors": {"image": {"dimensions": 0}}}, "greater than or equal to 1"),
        (
            {"vectors": {"text": {"dimensions": 5, "embedder": {"kind": "local"}}}},
            "makes 384-dimensional embeddings",
        ),
    ],
)
def test_a_definition_that_breaks_a_rule_is_refused_with_its_reason(
    extra: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ValidationError, match=reason):
        definition(**extra)


def test_commands_and_events_written_before_named_vectors_still_parse() -> None:
    created = parse_command(json.dumps({**ENVELOPE, "type": "CreateDataset", "payload": {"dimensions": 3}}))
    assert created.payload.vectors == {}  # type: ignore[union-attr]
    vectors = pack(np.ones((1, 3), dtype=np.float32))
    upsert = {**ENVELOPE, "type": "UpsertVectors", "payload": {"ids": ["a"], "vectors": vectors}}
    parsed = parse_command(json.dumps(upsert)).payload
    assert parsed.named_vectors == {} and parsed.vector_absent == []  # type: ignore[union-attr]
    event = {
        **ENVELOPE,
        "type": "VectorsUpserted",
        "payload": {"ids": ["a"], "vectors": vectors, "version": "v1", "vector_count": 1},
    }
    assert parse_event(json.dumps(event)).payload.named_vectors == {}  # type: ignore[union-attr]
    # A spec stored before named vectors has none, and one without them is written as before.
    old = '{"dimensions": 3, "metric": "cosine"}'
    assert DatasetSpec.from_json(old).vectors == {}
    assert "vectors" not in json.loads(DatasetSpec(3, "cosine").to_json())


def test_an_upsert_names_rows_of_its_own_records_once() -> None:
    vectors = np.ones((2, 3), dtype=np.float32)
    one = FieldVectors(rows=[1], vectors=np.ones((1, 2), dtype=np.float32))
    assert UpsertVectorsPayload(ids=["a", "b"], vectors=vectors, named_vectors={"image": one})
    beyond = FieldVectors(rows=[2], vectors=np.ones((1, 2), dtype=np.float32))
    with pytest.raises(ValidationError, match="names row 2 of 2"):
        UpsertVectorsPayload(ids=["a", "b"], vectors=vectors, named_vectors={"image": beyond})
    with pytest.raises(ValidationError, match="once"):
        FieldVectors(rows=[0, 0], vectors=np.ones((2, 2), dtype=np.float32))
    with pytest.raises(ValidationError, match="1 rows but 2 vectors"):
        FieldVectors(rows=[0], vectors=np.ones((2, 2), dtype=np.float32))
    with pytest.raises(ValidationError, match="NaN"):
        FieldVectors(rows=[0], vectors=np.full((1, 2), np.nan, dtype=np.float32))


def test_a_record_without_the_default_vector_carries_a_named_one() -> None:
    vectors = np.zeros((2, 3), dtype=np.float32)
    image = {"image": FieldVectors(rows=[1], vectors=np.ones((1, 2), dtype=np.float32))}
    made = UpsertVectorsPayload(ids=["a", "b"], vectors=vectors, named_vectors=image, vector_absent=[1])
    dense = dense_default(made.vectors, made.vector_absent)
    assert np.isnan(dense[1]).all() and not np.isnan(dense[0]).any() and not np.isnan(vectors).any()
    assert dense_default(vectors, []) is vectors
    with pytest.raises(ValidationError, match="row 0 has no default vector and no named one"):
        UpsertVectorsPayload(ids=["a", "b"], vectors=vectors, named_vectors=image, vector_absent=[0])


def test_a_field_is_dense_with_nan_where_a_record_lacks_it() -> None:
    given = {"image": FieldVectors(rows=[2, 0], vectors=np.array([[2, 2], [0, 0]], dtype=np.float32))}
    fields = {"image": VectorField(dimensions=2), "caption": VectorField(dimensions=3)}
    dense = dense_named_vectors(given, fields, 3)
    np.testing.assert_array_equal(dense["image"][[0, 2]], [[0, 0], [2, 2]])
    assert np.isnan(dense["image"][1]).all() and np.isnan(dense["caption"]).all()
    assert dense["caption"].shape == (3, 3)


def test_a_record_without_a_field_is_absent_from_that_field_alone() -> None:
    projection = DatasetProjection(2, "cosine", vectors={"image": VectorField(dimensions=3, metric="l2")})
    rng = np.random.default_rng(1)
    vectors, images = rng.standard_normal((40, 2)).astype(np.float32), rng.standard_normal((40, 3))
    images = images.astype(np.float32)
    images[::2] = np.nan  # even records carry no image
    metadata = [{"group": i % 3} for i in range(40)]
    with projection.lock.writing():
        projection.upsert([f"r{i}" for i in range(40)], vectors, None, metadata, {"image": images})
        projection.index_pending(5)  # some in HNSW, the rest scanned exactly
    image = projection.spaces["image"]
    assert len(image) == 20 and len(projection.default) == 40
    query = images[7]
    for exact in (True, False):
        found = [projection.id_of(h.slot) for h in image.search(query, 40, None, exact=exact)]
        assert found[0] == "r7" and sorted(found) == sorted(f"r{i}" for i in range(1, 40, 2))
        allowed = projection.allowed(parse_filter({"group": 1}))
        kept = [projection.id_of(h.slot) for h in image.search(query, 40, allowed, exact=exact)]
        assert sorted(kept) == sorted(f"r{i}" for i in range(1, 40, 2) if i % 3 == 1)
    assert projection.index_pending() == 40 + 20 - 5 and projection.pending == 0

    with projection.lock.writing():
        # Written again without its image, r7 leaves the image space; deleted, r9 leaves every space.
        projection.upsert(["r7"], vectors[7:8], None, [{"group": 1}])
        projection.delete(["r9"])
    assert len(image) == 18 and len(projection.default) == 39
    assert projection.named_vectors(projection.slot("r7") or 0) == {}
    found = {projection.id_of(h.slot) for h in image.search(query, 40, None)}
    assert "r7" not in found and "r9" not in found and len(found) == 18
    # A new record takes r9's freed slot, with an image of its own.
    with projection.lock.writing():
        projection.upsert(["new"], vectors[:1], None, None, {"image": query[None, :]})
    assert projection.id_of(image.search(query, 1, None)[0].slot) == "new"


def test_score_fusions_of_any_number_of_sides_agree_with_the_two_sided_ones() -> None:
    vector = (np.array([3, 1, 2]), np.array([0.9, 0.5, 0.7]))
    text = (np.array([2, 5]), np.array([4.0, 1.0]))
    for two, many in ((min_max, min_max_of), (dbsf, dbsf_of)):
        left, right = two(vector, text, 0.3), many([vector, text], [0.3, 0.7])
        np.testing.assert_array_equal(left[0], right[0])
        np.testing.assert_allclose(left[1], right[1])
    image = (np.array([5, 1]), np.array([-0.1, -0.3]))
    slots, scores = min_max_of([vector, text, image], [1.0, 1.0, 2.0])
    assert slots[0] == 5 and scores[0] == pytest.approx(2.0 + 0.0)
    with pytest.raises(ValueError, match="one finite, non-negative weight per side"):
        min_max_of([vector, text, image], [1.0, 1.0])


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"queries": [{"vector": [1.0]}], "vector": [1.0]}, "give `queries` or vector"),
        ({"queries": [{"vector": [1.0]}], "alpha": 0.5}, "give `queries` or alpha"),
        ({"queries": []}, "at least 1"),
        ({"queries": [{"mode": "text", "text": "a", "field": "image"}]}, "takes `text` alone"),
        ({"queries": [{"field": "image"}]}, "needs a vector"),
        ({"mode": "text", "text": "a", "field": "image"}, "`field` names a vector field"),
        ({"field": "bad.name", "vector": [1.0]}, "pattern"),
    ],
)
def test_a_search_request_that_mixes_its_forms_is_refused(body: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        SearchRequest.model_validate(body)


def test_a_split_upsert_keeps_each_records_named_vectors() -> None:
    rng = np.random.default_rng(2)
    rows = 40
    images = rng.standard_normal((rows, 3)).astype(np.float32)
    carried = [i for i in range(rows) if i % 3]
    payload = UpsertVectorsPayload(
        ids=[f"r{i}" for i in range(rows)],
        vectors=rng.standard_normal((rows, 16)).astype(np.float32),
        named_vectors={"image": FieldVectors(rows=carried, vectors=images[carried])},
        vector_absent=[i for i in carried if i % 5 == 0],
    )
    whole = UpsertVectors(tenant="default", dataset="d", payload=payload)
    parts = [parse_command(part.body).payload for part in split_command(whole, 1500)]
    assert len(parts) > 2
    image_of, absent = {}, []
    for part in parts:
        assert isinstance(part, UpsertVectorsPayload)
        given = part.named_vectors["image"]
        image_of.update({part.ids[row]: given.vectors[n] for n, row in enumerate(given.rows)})
        absent += [part.ids[row] for row in part.vector_absent]
    assert sorted(image_of) == sorted(f"r{i}" for i in carried)
    assert all(np.array_equal(image_of[f"r{i}"], images[i]) for i in carried)
    assert absent == [f"r{i}" for i in carried if i % 5 == 0]
