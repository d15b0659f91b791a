"""The operator (bootstrap) key: no other admin can revoke it, and `tributary keys create --admin` on the
server's machine is the way back in when it is gone (embedded mode with a generated key: nothing restores it)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from entrypoints.bootstrap import ADMIN_KEY_FILE
from entrypoints.http_app import create_app
from tests.helpers import serving
from tributary.settings import Settings


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def keys_create(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRIBUTARY_DATA_DIR": str(settings.data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "tributary", "keys", "create", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_only_the_operator_revokes_itself_and_the_cli_lets_the_operator_back_in(
    embedded_settings: Settings,
) -> None:
    settings = embedded_settings.model_copy(update={"admin_key": None})
    async with serving(create_app(settings), key=None) as client:
        # Made at the first start and, with no terminal on stdout, written to a file.
        operator = (settings.data_dir / ADMIN_KEY_FILE).read_text().strip()
        made = await client.post(
            "/api/v1/admin/keys", json={"tenant": "default", "roles": ["admin"]}, headers=bearer(operator)
        )
        admin = made.json()["key"]
        refused = await client.delete("/api/v1/admin/keys/bootstrap", headers=bearer(admin))
        assert refused.status_code == 403 and "operator key" in refused.text
        assert (await client.get("/api/v1/admin/keys", headers=bearer(operator))).status_code == 200

        assert (
            await client.delete("/api/v1/admin/keys/bootstrap", headers=bearer(operator))
        ).status_code == 204
        assert (await client.get("/api/v1/admin/keys", headers=bearer(operator))).status_code == 401
        # The default tenant's admin revokes itself too: no admin key is left anywhere.
        own_id = made.json()["id"]
        assert (await client.delete(f"/api/v1/admin/keys/{own_id}", headers=bearer(admin))).status_code == 204

        done = await asyncio.to_thread(keys_create, settings, "--admin")
        assert done.returncode == 0, done.stderr
        (back_in,) = done.stdout.split()
        listed = await client.get("/api/v1/admin/keys", headers=bearer(back_in))
        assert listed.status_code == 200, listed.text
        other = await asyncio.to_thread(keys_create, settings, "--role", "reader", "--tenant", "acme")
        assert other.returncode == 0, other.stderr
        acme = await client.get("/api/v1/datasets", headers=bearer(other.stdout.strip()))
        assert acme.status_code == 200 and acme.json()["datasets"] == []


def test_the_cli_refuses_a_key_without_a_role_or_with_a_bad_tenant(embedded_settings: Settings) -> None:
    assert "--admin or at least one --role" in keys_create(embedded_settings).stderr
    assert "not a tenant name" in keys_create(embedded_settings, "--admin", "--tenant", "Bad/Name").stderr
