"""The search cache (query_api/cache.py) never answers for another dataset than the one searched: DeepLake numbers
a dataset's versions from 1, so a dataset deleted and created again under its name goes through the versions
its predecessor had, and two deployments sharing a Redis each have a dataset of the same name. In embedded mode
(the in-process cache) and through Kafka with Redis (the shared one)."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import Deployment, embedded
from tests.kafka_tools import distributed
from tributary.settings import Settings

SEARCH = "/api/v1/datasets/docs/search?consistency=strong"


async def applied(client: httpx.AsyncClient, method: str, path: str, body: object = None) -> None:
    answer = await client.request(method, path + "?wait=true", json=body)
    assert answer.status_code == 200 and answer.json()["status"] == "applied", answer.text


@pytest.fixture(params=["embedded", "kafka"])
def deployment(request: pytest.FixtureRequest) -> Deployment:
    if request.param == "embedded":
        return embedded(request.getfixturevalue("embedded_settings"))
    settings: Settings = request.getfixturevalue("distributed_settings")
    return distributed(settings)


async def test_a_dataset_created_again_under_its_name_never_answers_with_its_predecessor(
    deployment: Deployment,
) -> None:
    async with deployment as (commands, reads):
        for generation in ("first", "second", "third"):
            await applied(commands, "POST", "/api/v1/datasets", {"name": "docs", "dimensions": 2})
            await applied(
                commands,
                "POST",
                "/api/v1/datasets/docs/vectors",
                {"vectors": [{"id": generation, "vector": [1, 0]}]},
            )
            # The same search each time, at the same version number of each generation.
            answer = await reads.post(SEARCH, json={"vector": [1, 0], "k": 5})
            assert answer.status_code == 200, answer.text
            assert [r["id"] for r in answer.json()["results"]] == [generation]
            await applied(commands, "DELETE", "/api/v1/datasets/docs")
