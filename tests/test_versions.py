"""Reads at a past version, end to end through the distributed roles over Kafka and PostgreSQL: write, delete and
update across several versions, then read each version (search with and without a filter, get, scroll, count)
and check it answers exactly what the dataset held then; the versions list names each write's operation; a
snapshot's id and tag reach its version; another tenant's reads are 404 and a key limited to another dataset is
refused."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from entrypoints.http_app import create_app
from tests.helpers import serving
from tests.kafka_tools import workers
from tributary.settings import Settings

DIMS = 8
BASE = "/api/v1/datasets/docs"


@dataclass
class State:
    """What the dataset holds at one version: id -> (vector, metadata, text)."""

    rows: dict[str, tuple[list[float], dict[str, Any], str]] = field(default_factory=dict)

    def copy(self) -> State:
        return State(dict(self.rows))

    def matching(self, tag: str | None) -> dict[str, tuple[list[float], dict[str, Any], str]]:
        return {i: r for i, r in self.rows.items() if tag is None or r[1].get("tag") == tag}

    def top(self, query: np.ndarray, k: int, tag: str | None = None) -> list[str]:
        """The exact top k by cosine similarity (ties by id are not expected with random vectors)."""
        rows = self.matching(tag)
        ids = list(rows)
        vectors = np.asarray([rows[i][0] for i in ids], dtype=np.float64)
        scores = vectors @ query / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(query))
        return [ids[j] for j in np.argsort(-scores, kind="stable")[:k]]


async def write(client: httpx.AsyncClient, method: str, path: str, body: Any = None) -> str:
    answer = await client.request(method, f"{path}?wait=true", json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "applied", answer.text
    return str(answer.json()["operation_id"])


async def read(client: httpx.AsyncClient, path: str, body: Any, version: str | None = None) -> dict[str, Any]:
    query = "?consistency=strong" if version is None else f"?version={version}"
    answer = await client.post(f"{BASE}{path}{query}", json=body)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def scroll_all(client: httpx.AsyncClient, version: str, tag: str | None) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    cursor = None
    while True:
        body: dict[str, Any] = {"limit": 7, "include": ["metadata", "text"]}
        if tag is not None:
            body["filter"] = {"tag": tag}
        if cursor is not None:
            body["cursor"] = cursor
        page = await read(client, "/scroll", body, version)
        assert page["version"] == version and page["consistency"] == "fixed"
        for result in page["results"]:
            assert result["id"] not in found
            found[result["id"]] = result
        cursor = page.get("next_cursor")
        if cursor is None:
            return found


async def check_version(
    client: httpx.AsyncClient, version: str, state: State, queries: np.ndarray, everyone: list[str]
) -> None:
    """Every read at `version` answers exactly what `state` holds."""
    for tag in (None, "even"):
        matching = state.matching(tag)
        counted = await read(client, "/count", {} if tag is None else {"filter": {"tag": tag}}, version)
        assert (counted["count"], counted["version"], counted["consistency"]) == (
            len(matching),
            version,
            "fixed",
        )
        scrolled = await scroll_all(client, version, tag)
        assert {i: (r["metadata"], r["text"]) for i, r in scrolled.items()} == {
            i: (m, t) for i, (_, m, t) in matching.items()
        }
        for query in queries:
            body: dict[str, Any] = {"vector": query.tolist(), "k": 5}
            if tag is not None:
                body["filter"] = {"tag": tag}
            page = await read(client, "/search", body, version)
            assert page["version"] == version
            assert [r["id"] for r in page["results"]] == state.top(query, 5, tag)
    got = await read(
        client, "/vectors/get", {"ids": everyone, "include": ["vector", "metadata", "text"]}, version
    )
    assert {r["id"]: (r["metadata"], r["text"]) for r in got["results"]} == {
        i: (m, t) for i, (_, m, t) in state.rows.items()
    }
    for result in got["results"]:
        assert np.allclose(result["vector"], state.rows[result["id"]][0], atol=1e-6)
    # Text search at a past version: BM25 over that version's texts.
    text = await read(client, "/search", {"mode": "text", "text": "word3", "k": 50}, version)
    assert {r["id"] for r in text["results"]} == {i for i, r in state.rows.items() if "word3" in r[2].split()}


def records(ids: range, rng: np.random.Generator, round_: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"v{i}",
            "vector": rng.normal(size=DIMS).tolist(),
            "metadata": {"i": i, "round": round_, "tag": "even" if i % 2 == 0 else "odd"},
            "text": f"round{round_} word{i % 5}",
        }
        for i in ids
    ]


def stored(state: State, sent: list[dict[str, Any]]) -> None:
    for record in sent:
        vector = np.asarray(record["vector"], dtype=np.float32).tolist()
        state.rows[record["id"]] = (vector, record["metadata"], record["text"])


async def test_each_version_answers_what_the_dataset_held_then(
    distributed_settings: Settings, tmp_path: Path
) -> None:
    settings = distributed_settings.model_copy(update={"backup_url": str(tmp_path / "backups")})
    rng = np.random.default_rng(13)
    queries = rng.normal(size=(4, DIMS))
    everyone = [f"v{i}" for i in range(80)]
    async with (
        workers(settings, "applier", "projector"),
        serving(create_app(settings, "command-api")) as commands,
        serving(create_app(settings, "query-api")) as reads,
    ):
        states: list[tuple[str, str, State]] = []  # (operation, version, state)

        async def after(operation: str, state: State) -> None:
            version = (await read(reads, "/count", {}))["version"]
            states.append((operation, version, state.copy()))

        await write(commands, "POST", "/api/v1/datasets", {"name": "docs", "dimensions": DIMS})
        state = State()
        sent = records(range(60), rng, 1)
        stored(state, sent)
        await after(await write(commands, "POST", f"{BASE}/vectors", {"vectors": sent}), state)

        for gone in ("v3", "v10", "v11"):
            del state.rows[gone]
        await after(
            await write(commands, "POST", f"{BASE}/vectors/delete", {"ids": ["v3", "v10", "v11"]}), state
        )

        # An update: replaced vectors, texts and metadata (odd ones become even), new ids, and a metadata patch.
        sent = records(range(50, 75), rng, 2)
        stored(state, sent)
        await after(await write(commands, "POST", f"{BASE}/vectors", {"vectors": sent}), state)
        patched = {**state.rows["v4"][1], "tag": "odd", "note": "patched"}
        state.rows["v4"] = (state.rows["v4"][0], patched, state.rows["v4"][2])
        await after(
            await write(
                commands, "PATCH", f"{BASE}/vectors/v4", {"metadata": {"tag": "odd", "note": "patched"}}
            ),
            state,
        )

        snapshot = await write(commands, "POST", f"{BASE}/snapshots", {})
        # A delete by filter after the snapshot.
        state.rows = {i: r for i, r in state.rows.items() if r[1]["round"] != 1 or r[1]["tag"] != "odd"}
        await after(
            await write(commands, "POST", f"{BASE}/vectors/delete", {"filter": {"round": 1, "tag": "odd"}}),
            state,
        )

        versions = [version for _, version, _ in states]
        assert len(set(versions)) == len(versions), versions
        for _, version, held in states:
            await check_version(reads, version, held, queries, everyone)
        # Again, now from the held projections (the first reads loaded them).
        await check_version(reads, versions[1], states[1][2], queries, everyone)

        # The history names the operation behind each version, and the snapshot's tag.
        listed = (await reads.get(f"{BASE}/versions")).json()["versions"]
        by_version = {entry["version"]: entry for entry in listed}
        for operation, version, _ in states:
            assert by_version[version]["operations"] == [operation]
        assert [entry["version"] for entry in listed] == sorted(by_version)
        tagged = [entry for entry in listed if f"snapshot-{snapshot}" in entry["tags"]]
        assert [entry["version"] for entry in tagged] == [versions[3]]

        # A snapshot's id and its tag name the snapshot's version.
        for name in (snapshot, f"snapshot-{snapshot}"):
            counted = await read(reads, "/count", {}, name)
            assert (counted["count"], counted["version"]) == (len(states[3][2].rows), versions[3])

        # Refusals: an unknown version, a version with a consistency level or token, `ef` at a past version.
        missing = await reads.post(f"{BASE}/count?version=nope", json={})
        assert missing.status_code == 404 and "nope" in missing.text, missing.text
        for extra in ("&consistency=strong", "&consistency=eventual", "&token=0:1"):
            mixed = await reads.post(f"{BASE}/count?version={versions[0]}{extra}", json={})
            assert mixed.status_code == 422 and "fixed" in mixed.text, mixed.text
        ef = await reads.post(
            f"{BASE}/search?version={versions[0]}", json={"vector": queries[0].tolist(), "ef": 50}
        )
        assert ef.status_code == 422 and "exact scan" in ef.text, ef.text

        # Another tenant: 404 as for a missing dataset; a key limited to another dataset: refused.
        other = await keyed(commands, {"tenant": "other", "roles": ["admin"]})
        elsewhere = await keyed(
            commands, {"tenant": "default", "roles": ["reader"], "datasets": ["elsewhere"]}
        )
        limited = await keyed(commands, {"tenant": "default", "roles": ["reader"], "datasets": ["docs"]})
        requests = [
            ("GET", f"{BASE}/versions", None),
            ("POST", f"{BASE}/count?version={versions[0]}", {}),
            ("POST", f"{BASE}/search?version={versions[0]}", {"vector": queries[0].tolist()}),
        ]
        for method, path, body in requests:
            assert (await reads.request(method, path, json=body, headers=other)).status_code == 404
            assert (await reads.request(method, path, json=body, headers=elsewhere)).status_code == 403
            assert (await reads.request(method, path, json=body, headers=limited)).status_code == 200


async def keyed(commands: httpx.AsyncClient, body: Mapping[str, Any]) -> dict[str, str]:
    made = await commands.post("/api/v1/admin/keys", json=body)
    assert made.status_code == 201, made.text
    return {"Authorization": f"Bearer {made.json()['key']}"}
