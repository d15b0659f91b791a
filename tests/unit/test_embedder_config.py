"""A dataset's embedder configuration in the contracts and in the DeepLake spec."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from events import (
    CreateDataset,
    CreateDatasetPayload,
    LocalEmbedderConfig,
    OpenAIEmbedderConfig,
    parse_command,
)
from tributary.storage import DatasetSpec


def test_a_create_with_an_embedder_round_trips_and_the_spec_keeps_it() -> None:
    config = OpenAIEmbedderConfig(model="m", endpoint="openai", dimensions=8)
    command = CreateDataset(
        tenant="acme", dataset="docs", payload=CreateDatasetPayload(dimensions=8, embedder=config)
    )
    assert parse_command(command.model_dump_json()) == command
    spec = DatasetSpec(dimensions=8, metric="cosine", embedder=config)
    assert DatasetSpec.from_json(spec.to_json()) == spec
    assert DatasetSpec.from_json(DatasetSpec(dimensions=8, metric="cosine").to_json()).embedder is None


@pytest.mark.parametrize(
    ("embedder", "reason"),
    [
        ({"kind": "local"}, "makes 384-dimensional embeddings, the dataset has 8"),
        ({"kind": "local", "model": "other"}, "all-minilm-l6-v2"),
        ({"kind": "openai", "model": "m", "endpoint": "e", "dimensions": 4}, "4-dimensional"),
        ({"kind": "openai", "model": "m"}, "endpoint"),
        ({"kind": "openai", "model": "m", "endpoint": "e", "base_url": "https://h"}, "endpoint"),
        ({"kind": "openai", "model": "m", "endpoint": "E/x"}, "endpoint"),
        ({"kind": "openai", "model": "m", "endpoint": "e", "api_key": "sk"}, "api_key"),
    ],
)
def test_a_create_whose_embedder_cannot_fill_the_dataset_is_invalid(
    embedder: dict[str, object], reason: str
) -> None:
    with pytest.raises(ValidationError, match=reason):
        CreateDatasetPayload.model_validate({"dimensions": 8, "embedder": embedder})


def test_the_local_model_is_the_default() -> None:
    assert CreateDatasetPayload.model_validate(
        {"dimensions": 384, "embedder": {"kind": "local"}}
    ).embedder == LocalEmbedderConfig(model="all-minilm-l6-v2")


def test_a_dataset_stored_with_a_url_before_named_endpoints_still_reads() -> None:
    old = {"kind": "openai", "model": "m", "base_url": "https://api.openai.com/v1", "dimensions": 8}
    payload = CreateDatasetPayload.model_validate({"dimensions": 8, "embedder": old})
    assert isinstance(payload.embedder, OpenAIEmbedderConfig)
    assert payload.embedder.base_url == "https://api.openai.com/v1" and payload.embedder.endpoint is None
