"""A gRPC `Query` carries `exact` and `ef` to the search request, and `CreateDatasetRequest` the index settings to
the dataset, as the HTTP bodies do, bounds included."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from entrypoints.grpc_api.servicers import _create_body, _query, _upsert_body, _validated
from entrypoints.grpc_api.v1 import tributary_pb2 as pb
from schemas.search import SearchRequest
from tributary.failures import Invalid

VECTOR = np.ones(3, dtype="<f4").tobytes()


def test_exact_and_ef_reach_the_search_request() -> None:
    assert _validated(SearchRequest, _query(pb.Query(vector=VECTOR, exact=True)), "query").exact
    asked = _validated(SearchRequest, _query(pb.Query(vector=VECTOR, ef=64)), "query")
    assert (asked.ef, asked.exact) == (64, False)
    plain = _validated(SearchRequest, _query(pb.Query(vector=VECTOR)), "query")
    assert (plain.ef, plain.exact) == (None, False)


def test_an_ef_of_zero_is_refused_naming_the_field() -> None:
    with pytest.raises(Invalid) as refused:
        _validated(SearchRequest, _query(pb.Query(vector=VECTOR, ef=0)), "queries", 1)
    assert [problem["loc"] for problem in refused.value.problems] == [("queries", 1, "ef")]


def test_a_dataset_created_over_grpc_takes_the_index_settings_of_the_http_body() -> None:
    asked = _create_body(pb.CreateDatasetRequest(name="docs", dimensions=4, index_json='{"m": 32}'))
    assert (asked.index.m, asked.index.target_recall) == (32, 0.99)
    assert _create_body(pb.CreateDatasetRequest(name="docs", dimensions=4)).index.m == 16
    with pytest.raises(ValidationError) as refused:
        _create_body(pb.CreateDatasetRequest(name="docs", dimensions=4, index_json='{"target_recall": 1.5}'))
    assert [error["loc"] for error in refused.value.errors()] == [("index", "target_recall")]


def test_streamed_vectors_decoded_in_bulk_are_the_records_own_and_bad_ones_are_named() -> None:
    rows = np.arange(12, dtype="<f4").reshape(4, 3)
    records = [pb.Record(id=f"r{i}", vector=row.tobytes()) for i, row in enumerate(rows)]
    body = _upsert_body(records)
    assert [record.id for record in body.vectors] == ["r0", "r1", "r2", "r3"]
    np.testing.assert_array_equal(np.stack([record.vector for record in body.vectors]), rows)  # type: ignore[arg-type]

    # A NaN among vectors of one width, and a width that is not whole floats: each refused at its record.
    poisoned = rows.copy()
    poisoned[2, 1] = np.nan
    for bad, index, reason in (
        ([pb.Record(vector=row.tobytes()) for row in poisoned], 2, "NaN or infinite"),
        ([pb.Record(vector=VECTOR), pb.Record(vector=b"\x00" * 5)], 1, "multiple of 4"),
    ):
        with pytest.raises(ValidationError) as refused:
            _upsert_body(bad)
        assert {error["loc"][:2] for error in refused.value.errors()} == {("vectors", index)}
        assert reason in str(refused.value)
