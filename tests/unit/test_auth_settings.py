"""Security settings: secrets never print, and an incomplete or risky JWT setup fails at startup."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tributary.auth.keys import new_key
from tributary.settings import Settings

JWT = {"jwt_issuer": "https://idp.example", "jwt_audience": "tributary"}


def make(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_secrets_never_print(monkeypatch: pytest.MonkeyPatch) -> None:
    admin_key, jwt_secret = new_key().key, "j" * 40
    monkeypatch.setenv("TRIBUTARY_ADMIN_KEY", admin_key)
    monkeypatch.setenv("TRIBUTARY_JWT_ALGORITHM", "HS256")
    monkeypatch.setenv("TRIBUTARY_JWT_SECRET", jwt_secret)
    settings = make(**JWT)
    assert settings.admin_key is not None and settings.admin_key.get_secret_value() == admin_key
    assert settings.jwt_secret is not None and settings.jwt_secret.get_secret_value() == jwt_secret
    for shown in (repr(settings), str(settings), settings.model_dump_json(), str(settings.model_dump())):
        assert admin_key not in shown and jwt_secret not in shown


@pytest.mark.parametrize(
    "bad_key", ["changeme", "trb_abcdefgh_short", "x" * 64, new_key().key + "x", new_key().key.upper()]
)
def test_the_admin_key_must_be_a_key_and_is_not_echoed(bad_key: str) -> None:
    with pytest.raises(ValidationError, match="trb_<prefix>_<secret>") as caught:
        make(admin_key=bad_key)
    assert bad_key not in str(caught.value)


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"jwt_algorithm": "HS256", "jwt_secret": "s" * 32}, "needs jwt_issuer and jwt_audience"),
        ({"jwt_algorithm": "HS256", **JWT}, "HS256 needs jwt_secret"),
        ({"jwt_algorithm": "HS256", "jwt_secret": "short-secret", **JWT}, "at least 32 bytes"),
        ({"jwt_algorithm": "HS256", "jwt_secret": "s" * 32, "jwt_jwks": "k.json", **JWT}, "no jwt_jwks"),
        ({"jwt_algorithm": "RS256", **JWT}, "RS256 needs jwt_jwks"),
        ({"jwt_algorithm": "ES256", "jwt_jwks": "k.json", "jwt_secret": "s" * 32, **JWT}, "no jwt_secret"),
        ({"jwt_algorithm": "none", **JWT}, "jwt_algorithm"),
        ({"jwt_algorithm": "HS384", **JWT}, "jwt_algorithm"),
        ({"jwt_secret": "s" * 32}, "need jwt_algorithm"),
        ({"jwt_jwks": "k.json"}, "need jwt_algorithm"),
        ({"jwt_leeway_s": 3600}, "jwt_leeway_s"),
    ],
)
def test_jwt_setups_that_fail_at_startup(values: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem) as caught:
        make(**values)
    assert "short-secret" not in str(caught.value) and "s" * 32 not in str(caught.value)


def test_complete_jwt_setups() -> None:
    assert make(jwt_algorithm="HS256", jwt_secret="s" * 32, **JWT).jwt_algorithm == "HS256"
    assert make(jwt_algorithm="RS256", jwt_jwks="https://idp.example/jwks", **JWT).jwt_jwks
    assert make(jwt_algorithm="ES256", jwt_jwks="/etc/tributary/jwks.json", **JWT).jwt_jwks
    assert make().jwt_algorithm is None


def test_rate_limit_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIBUTARY_RATE_LIMIT_KEY_WRITES_PER_S", "2.5")
    monkeypatch.setenv("TRIBUTARY_RATE_LIMIT_FAIL_OPEN", "false")
    settings = make()
    assert (settings.rate_limit_key_writes_per_s, settings.rate_limit_fail_open) == (2.5, False)
    with pytest.raises(ValidationError):
        make(rate_limit_tenant_reads_burst=0)
    with pytest.raises(ValidationError):
        make(rate_limit_key_reads_per_s=0)
