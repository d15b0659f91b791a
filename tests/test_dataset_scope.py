"""A credential limited to some datasets touches only those, on every route: each route declares which datasets
it touches (tributary.deps: on_dataset, tenant_wide, scope_check), whatever its path parameters are called."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from entrypoints.http_app import create_app
from tests.helpers import serving
from tributary.deps import SCOPE_CHECKS
from tributary.settings import Settings


def _calls(dependant: Dependant) -> Iterator[object]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from _calls(dependency)


def _api_routes(routes: list[BaseRoute]) -> Iterator[APIRoute]:
    for route in routes:
        # FastAPI keeps an included router as one entry that holds the router.
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _api_routes(included.routes)
        elif isinstance(route, APIRoute):
            yield route


def test_every_api_route_declares_the_datasets_it_touches(embedded_settings: Settings) -> None:
    routes = [route for route in _api_routes(create_app(embedded_settings).routes) if "/api/" in route.path]
    assert len(routes) > 12
    undeclared = [
        f"{sorted(route.methods)} {route.path}"
        for route in routes
        if not any(call in SCOPE_CHECKS for call in _calls(route.dependant))
    ]
    assert undeclared == []


async def test_a_key_limited_to_a_dataset_reads_no_operation_of_another(embedded_settings: Settings) -> None:
    async with serving(create_app(embedded_settings)) as admin:
        for name in ("mine", "theirs"):
            created = await admin.post("/api/v1/datasets?wait=true", json={"name": name, "dimensions": 2})
            assert created.json()["status"] == "applied"
        ops = {
            name: (
                await admin.post(f"/api/v1/datasets/{name}/vectors", json={"vectors": [{"vector": [1, 0]}]})
            ).json()["operation_id"]
            for name in ("mine", "theirs")
        }
        made = await admin.post(
            "/api/v1/admin/keys", json={"tenant": "default", "roles": ["writer"], "datasets": ["mine"]}
        )
        limited = {"Authorization": f"Bearer {made.json()['key']}"}
        mine = await admin.get(f"/api/v1/operations/{ops['mine']}", headers=limited)
        assert mine.status_code == 200 and mine.json()["dataset"] == "mine"
        theirs = await admin.get(f"/api/v1/operations/{ops['theirs']}", headers=limited)
        assert theirs.status_code == 404, theirs.text
        assert (await admin.get(f"/api/v1/operations/{ops['theirs']}")).status_code == 200

        # The same key on the dataset routes, whichever path parameter names the dataset.
        for method, path, body in [
            ("GET", "/api/v1/datasets/theirs", None),
            ("DELETE", "/api/v1/datasets/theirs", None),
            ("POST", "/api/v1/datasets/theirs/search", {"vector": [1, 0]}),
            ("POST", "/api/v1/datasets/theirs/vectors", {"vectors": [{"vector": [1, 0]}]}),
            ("POST", "/api/v1/admin/datasets/theirs/rebuild", None),
        ]:
            answer = await admin.request(method, path, json=body, headers=limited)
            assert answer.status_code == 403, f"{method} {path}: {answer.text}"
        assert (await admin.get("/api/v1/datasets/mine", headers=limited)).status_code == 200
        listed = await admin.get("/api/v1/datasets", headers=limited)
        assert [d["name"] for d in listed.json()["datasets"]] == ["mine"]
        refused = await admin.post("/api/v1/datasets", json={"name": "new", "dimensions": 2}, headers=limited)
        assert refused.status_code == 403
        assert (await admin.get("/api/v1/admin/keys", headers=limited)).status_code == 403
