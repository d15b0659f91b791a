"""The message contracts: round trips, the vector wire form, and the reasons bad messages get."""

from __future__ import annotations

import base64
import binascii
import json
import uuid

import numpy as np
import pytest
from pydantic import BaseModel, ValidationError

from events import (
    CreateDataset,
    CreateDatasetPayload,
    DatasetCreated,
    DatasetCreatedPayload,
    DeleteVectorsPayload,
    Topics,
    UpdateMetadataPayload,
    UpsertVectors,
    UpsertVectorsPayload,
    event_for,
    parse_command,
    parse_event,
    partition_key,
)
from events.vectors import decode_base64, encode_base64
from schemas.datasets import CreateDatasetRequest
from schemas.vectors import DeleteVectorsRequest, MetadataPatch
from tributary.bus import ConsistencyToken


def upsert(vectors: object, ids: list[str]) -> UpsertVectors:
    return UpsertVectors(
        tenant="acme",
        dataset="docs",
        payload=UpsertVectorsPayload(ids=ids, vectors=vectors),  # type: ignore[arg-type]
    )


def test_command_round_trips_through_json() -> None:
    command = CreateDataset(tenant="acme", dataset="docs", payload=CreateDatasetPayload(dimensions=384))
    parsed = parse_command(command.model_dump_json())
    assert parsed == command
    assert json.loads(command.model_dump_json())["type"] == "CreateDataset"


def test_vectors_travel_packed_and_come_back_exactly() -> None:
    vectors = np.random.default_rng(1).standard_normal((3, 5)).astype(np.float32)
    wire = json.loads(upsert(vectors, ["a", "b", "c"]).model_dump_json())
    assert set(wire["payload"]["vectors"]) == {"shape", "dtype", "data"}
    parsed = parse_command(json.dumps(wire))
    assert isinstance(parsed, UpsertVectors)
    np.testing.assert_array_equal(parsed.payload.vectors, vectors)


def test_the_wire_base64_is_the_standard_one_and_a_bad_one_is_refused_with_its_reason() -> None:
    data = np.random.default_rng(2).bytes(1001)
    assert encode_base64(data) == base64.b64encode(data).decode("ascii")
    assert decode_base64(base64.b64encode(data)) == decode_base64(encode_base64(data)) == data
    with pytest.raises(binascii.Error, match="Incorrect padding"):
        decode_base64("YWJjZA")
    with pytest.raises(binascii.Error, match="Only base64 data"):
        decode_base64("YWJj\n")


def test_float_lists_from_direct_producers_are_accepted() -> None:
    parsed = upsert([[1.0, 2.0], [3.0, 4.0]], ["a", "b"])
    assert parsed.payload.vectors.dtype == np.float32
    assert parsed.payload.vectors.shape == (2, 2)


@pytest.mark.parametrize(
    ("vectors", "ids", "reason"),
    [
        ([[1.0, float("nan")], [1.0, 2.0]], ["a", "b"], "index 0 holds NaN"),
        ([[1.0, 2.0], [float("inf"), 2.0]], ["a", "b"], "index 1 holds NaN or infinity"),
        ([[1.0, 2.0]], ["a", "b"], "2 ids but 1 vectors"),
        ([[1.0, 2.0], [3.0, 4.0]], ["a", "a"], "unique"),
        ([[1.0, 2.0], [3.0]], ["a", "b"], "vectors must be"),
        ({"shape": [2, 2], "data": "AAAA"}, ["a", "b"], "needs 16"),
    ],
)
def test_bad_vectors_are_refused_with_the_reason(vectors: object, ids: list[str], reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        upsert(vectors, ids)


def test_unknown_command_type_is_refused() -> None:
    with pytest.raises(ValidationError, match="CreateDataset"):
        parse_command(json.dumps({"type": "DropEverything", "tenant": "a", "dataset": "b", "payload": {}}))


@pytest.mark.parametrize("name", ["", "Docs", "../etc", "a/b", "x" * 64, "with space"])
def test_names_that_could_escape_a_path_or_key_are_refused(name: str) -> None:
    with pytest.raises(ValidationError):
        CreateDataset(tenant="acme", dataset=name, payload=CreateDatasetPayload(dimensions=3))


def test_events_caused_by_one_command_have_stable_ids() -> None:
    command = CreateDataset(tenant="acme", dataset="docs", payload=CreateDatasetPayload(dimensions=3))
    payload = DatasetCreatedPayload(dimensions=3, metric="cosine", version="v1")
    first = event_for(command, DatasetCreated, payload)
    again = event_for(command, DatasetCreated, payload)
    assert first.id == again.id
    assert first.causation_id == command.id
    assert parse_event(first.model_dump_json()) == first


def test_topics_and_keys() -> None:
    topics = Topics("prod")
    assert (topics.commands, topics.events, topics.dead_letters) == (
        "prod.commands",
        "prod.events",
        "prod.dead-letters",
    )
    assert partition_key("acme", "docs") == b"acme/docs"


def test_consistency_token_round_trip() -> None:
    token = ConsistencyToken(partition=3, offset=42)
    assert ConsistencyToken.parse(str(token)) == token
    with pytest.raises(ValueError, match="partition"):
        ConsistencyToken.parse(str(uuid.uuid4()))


@pytest.mark.parametrize(
    ("request_model", "payload"),
    [
        (CreateDatasetRequest, CreateDatasetPayload),
        (DeleteVectorsRequest, DeleteVectorsPayload),
        (MetadataPatch, UpdateMetadataPayload),
    ],
)
def test_a_request_that_mirrors_a_payload_states_no_field_of_its_own_twice(
    request_model: type[BaseModel], payload: type[BaseModel]
) -> None:
    shared = next(
        base for base in payload.__mro__[1:] if base in request_model.__mro__ and base is not BaseModel
    )
    assert shared.model_fields, f"{request_model.__name__} and {payload.__name__} share no field base"
    for field, info in shared.model_fields.items():
        assert payload.model_fields[field].annotation == info.annotation
        # The request may narrow a field (a default, a bound per request) but keeps its type.
        assert request_model.model_fields[field].annotation == info.annotation


def test_a_delete_command_with_an_empty_filter_is_refused_as_the_request_is() -> None:
    with pytest.raises(ValidationError, match="would delete every vector"):
        DeleteVectorsPayload(filter={})
    with pytest.raises(ValidationError, match="would delete every vector"):
        DeleteVectorsRequest.model_validate({"filter": {}})


def _nested(depth: int) -> dict[str, object]:
    value: dict[str, object] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"inner": value}
    return value


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ({"a": "x", "b": float("nan")}, "finite numbers"),
        ({"a": 1, "b": {"c": [1.0, float("inf")]}}, "finite numbers"),
        ({"a": [{"b": float("-inf")}]}, "finite numbers"),
        (_nested(32), "deeper than 32"),
    ],
)
def test_metadata_without_a_json_form_is_refused_flat_or_nested(
    metadata: dict[str, object], reason: str
) -> None:
    with pytest.raises(ValidationError, match=reason):
        UpdateMetadataPayload(id="a", metadata=metadata)


@pytest.mark.parametrize(
    "metadata",
    [
        {},
        {"a": "x", "n": 2, "f": 0.5, "t": True, "none": None},
        {"tags": ["a", "b"], "at": {"x": 1.5}},
        _nested(31),
    ],
)
def test_plain_json_metadata_is_kept_as_given(metadata: dict[str, object]) -> None:
    assert UpdateMetadataPayload(id="a", metadata=metadata).metadata == metadata
