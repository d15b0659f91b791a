"""JWT verification: the pinned algorithm, the checked claims, the three key sources, and safe errors."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tributary.auth.jwt import InvalidToken, JwtVerifier
from tributary.auth.principal import Principal
from tributary.settings import Settings

SECRET = "s" * 32
ISSUER, AUDIENCE = "https://idp.example", "tributary"


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"jwt_issuer": ISSUER, "jwt_audience": AUDIENCE, "jwt_leeway_s": 10}
    return Settings(_env_file=None, **(values | overrides))  # type: ignore[call-arg]


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "sub": "user-1",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": now + 60,
        "nbf": now,
        "tenant": "acme",
        "roles": ["writer"],
    }
    return {k: v for k, v in (base | overrides).items() if v is not None}


def hs256(**overrides: Any) -> str:
    return jwt.encode(claims(**overrides), SECRET, algorithm="HS256")


@pytest.fixture
def hs_verifier() -> JwtVerifier:
    verifier = JwtVerifier.from_settings(settings(jwt_algorithm="HS256", jwt_secret=SECRET))
    assert verifier is not None
    return verifier


async def rejected(verifier: JwtVerifier, token: str) -> str:
    with pytest.raises(InvalidToken) as caught:
        await verifier.verify(token)
    # The reason is shown to the caller: it must not carry the token or any piece of it.
    assert not token or token not in str(caught.value)
    assert all(part not in caught.value.reason for part in token.split(".") if len(part) > 3)
    return caught.value.reason


async def test_a_valid_token_maps_to_a_principal(hs_verifier: JwtVerifier) -> None:
    principal = await hs_verifier.verify(hs256(roles=["reader", "writer"], datasets=["docs", "logs"]))
    assert principal == Principal(
        subject="user-1",
        tenant="acme",
        roles=frozenset({"reader", "writer"}),
        datasets=frozenset({"docs", "logs"}),
        via="jwt",
    )


def test_no_verifier_without_an_algorithm() -> None:
    assert JwtVerifier.from_settings(settings()) is None


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"exp": int(time.time()) - 60}, "token expired"),
        ({"nbf": int(time.time()) + 3600}, "token not yet valid"),  # far: computed at collection time
        ({"iss": "https://evil.example"}, "wrong issuer"),
        ({"aud": "someone-else"}, "wrong audience"),
        ({"exp": None}, "missing claim: exp"),
        ({"iss": None}, "missing claim: iss"),
        ({"aud": None}, "missing claim: aud"),
        ({"sub": None}, "missing claim: sub"),
        ({"tenant": None}, "missing claim: tenant"),
        ({"tenant": "../etc"}, "invalid claim: tenant"),
        ({"tenant": 7}, "invalid claim: tenant"),
        ({"datasets": "docs"}, "invalid claim: datasets"),
        ({"datasets": ["Not A Name"]}, "invalid claim: datasets"),
    ],
)
async def test_claims_are_checked(hs_verifier: JwtVerifier, overrides: dict[str, Any], reason: str) -> None:
    assert await rejected(hs_verifier, hs256(**overrides)) == reason


async def test_clock_skew_within_leeway_is_tolerated() -> None:
    # The most leeway allowed and half of it as skew: PyJWT reads the wall clock, so the margins are wide.
    verifier = JwtVerifier.from_settings(settings(jwt_algorithm="HS256", jwt_secret=SECRET, jwt_leeway_s=300))
    assert verifier is not None
    now = int(time.time())
    assert await verifier.verify(hs256(exp=now - 150, nbf=now + 150))


async def test_nbf_is_optional(hs_verifier: JwtVerifier) -> None:
    assert await hs_verifier.verify(hs256(nbf=None))


async def test_audience_may_be_one_of_several(hs_verifier: JwtVerifier) -> None:
    assert await hs_verifier.verify(hs256(aud=["other", AUDIENCE]))


@pytest.mark.parametrize(
    ("roles", "expected"),
    [
        (["admin", "offline_access", "uma_authorization"], {"admin"}),
        ("reader writer openid", {"reader", "writer"}),
        (None, set()),
        ([], set()),
        (42, set()),
        (["ADMIN"], set()),
    ],
)
async def test_roles_keep_ours_only(hs_verifier: JwtVerifier, roles: object, expected: set[str]) -> None:
    assert (await hs_verifier.verify(hs256(roles=roles))).roles == expected


async def test_claim_names_are_configurable() -> None:
    verifier = JwtVerifier.from_settings(
        settings(
            jwt_algorithm="HS256",
            jwt_secret=SECRET,
            jwt_tenant_claim="org",
            jwt_roles_claim="https://tributary/roles",
            jwt_datasets_claim="ds",
        )
    )
    assert verifier is not None
    token = hs256(tenant=None, roles=None, org="acme", ds=["docs"], **{"https://tributary/roles": ["reader"]})
    principal = await verifier.verify(token)
    assert (principal.tenant, principal.roles, principal.datasets) == ("acme", {"reader"}, {"docs"})


async def test_signature_is_checked(hs_verifier: JwtVerifier) -> None:
    assert await rejected(hs_verifier, jwt.encode(claims(), "t" * 32, algorithm="HS256")) == "bad signature"
    header, _, signature = hs256().split(".")
    forged = base64.urlsafe_b64encode(json.dumps(claims(roles=["admin"])).encode()).rstrip(b"=").decode()
    assert await rejected(hs_verifier, f"{header}.{forged}.{signature}") == "bad signature"


async def test_unsigned_tokens_are_refused(hs_verifier: JwtVerifier) -> None:
    unsigned = jwt.encode(claims(roles=["admin"]), None, algorithm="none")
    assert await rejected(hs_verifier, unsigned) == "algorithm not allowed"


async def test_other_algorithms_are_refused(hs_verifier: JwtVerifier) -> None:
    hs512 = jwt.encode(claims(), SECRET * 2, algorithm="HS512")
    assert await rejected(hs_verifier, hs512) == "algorithm not allowed"


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("", "malformed token"),
        ("abc", "malformed token"),
        ("a.b.c", "malformed token"),
        ("trb_abcdefgh_" + "A" * 43, "malformed token"),
        ("e30.e30.e30", "algorithm not allowed"),  # {} as header: no algorithm at all
    ],
)
async def test_malformed_tokens(hs_verifier: JwtVerifier, token: str, reason: str) -> None:
    assert await rejected(hs_verifier, token) == reason


# Public-key algorithms.


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def rsa_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    return {**RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "use": "sig"}


def write_jwks(path: Path, *jwks: dict[str, Any]) -> str:
    path.write_text(json.dumps({"keys": list(jwks)}))
    return str(path)


async def test_rs256_with_a_jwks_file(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    jwks = write_jwks(tmp_path / "jwks.json", rsa_jwk(rsa_key, "k1"))
    verifier = JwtVerifier.from_settings(settings(jwt_algorithm="RS256", jwt_jwks=jwks))
    assert verifier is not None
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "k1"})
    assert (await verifier.verify(token)).tenant == "acme"
    # The only key of the file also verifies a token that names none.
    assert await verifier.verify(jwt.encode(claims(), rsa_key, algorithm="RS256"))
    other = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "k2"})
    assert await rejected(verifier, other) == "unknown signing key"
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims(), stranger, algorithm="RS256", headers={"kid": "k1"})
    assert await rejected(verifier, forged) == "bad signature"


async def test_es256_with_a_jwks_file(tmp_path: Path, ec_key: ec.EllipticCurvePrivateKey) -> None:
    jwk = {**ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True), "kid": "e1"}
    verifier = JwtVerifier.from_settings(
        settings(jwt_algorithm="ES256", jwt_jwks=write_jwks(tmp_path / "jwks.json", jwk))
    )
    assert verifier is not None
    token = jwt.encode(claims(), ec_key, algorithm="ES256", headers={"kid": "e1"})
    assert (await verifier.verify(token)).subject == "user-1"


def hmac_token(secret: bytes, header: dict[str, Any], payload: dict[str, Any]) -> str:
    """Signs by hand: PyJWT itself refuses to use a public key as an HMAC secret, an attacker does not."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    signed = f"{part(header)}.{part(payload)}"
    signature = hmac.new(secret, signed.encode(), hashlib.sha256).digest()
    return f"{signed}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


async def test_algorithm_confusion_is_refused(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    jwks = write_jwks(tmp_path / "jwks.json", rsa_jwk(rsa_key, "k1"))
    verifier = JwtVerifier.from_settings(settings(jwt_algorithm="RS256", jwt_jwks=jwks))
    assert verifier is not None
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged = hmac_token(public_pem, {"alg": "HS256", "typ": "JWT", "kid": "k1"}, claims(roles=["admin"]))
    assert await rejected(verifier, forged) == "algorithm not allowed"
    # And the other way round: a token signed with the RSA key does not pass an HS256 verifier.
    hs_verifier = JwtVerifier.from_settings(settings(jwt_algorithm="HS256", jwt_secret=SECRET))
    assert hs_verifier is not None
    rs_token = jwt.encode(claims(), rsa_key, algorithm="RS256")
    assert await rejected(hs_verifier, rs_token) == "algorithm not allowed"


def test_a_jwks_file_without_a_key_for_the_algorithm_fails_at_startup(
    tmp_path: Path, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    jwk = ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True)
    with pytest.raises(ValueError, match="no RS256 signing key"):
        JwtVerifier.from_settings(
            settings(jwt_algorithm="RS256", jwt_jwks=write_jwks(tmp_path / "jwks.json", jwk))
        )


class JwksServer:
    """A JWKS endpoint on the loopback interface that counts its fetches."""

    def __init__(self) -> None:
        self.jwks: dict[str, Any] = {"keys": []}
        self.fetches = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.fetches += 1
                body = json.dumps(owner.jwks).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/.well-known/jwks.json"


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer()
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()
    thread.join()


async def test_rs256_with_a_jwks_url(jwks_server: JwksServer, rsa_key: rsa.RSAPrivateKey) -> None:
    jwks_server.jwks = {"keys": [rsa_jwk(rsa_key, "k1")]}
    verifier = JwtVerifier.from_settings(settings(jwt_algorithm="RS256", jwt_jwks=jwks_server.url))
    assert verifier is not None
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "k1"})
    assert (await verifier.verify(token)).tenant == "acme"
    assert await verifier.verify(token)
    assert jwks_server.fetches == 1  # cached

    # Junk key ids do not make every request refetch the key set.
    for kid in ("nope", "still-nope"):
        junk = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": kid})
        assert await rejected(verifier, junk) == "unknown signing key"
    assert jwks_server.fetches == 1
    no_kid = jwt.encode(claims(), rsa_key, algorithm="RS256")
    assert await rejected(verifier, no_kid) == "missing key id (kid)"


async def test_an_unreachable_jwks_url(jwks_server: JwksServer, rsa_key: rsa.RSAPrivateKey) -> None:
    url = jwks_server.url
    jwks_server.server.shutdown()
    jwks_server.server.server_close()
    verifier = JwtVerifier.from_settings(settings(jwt_algorithm="RS256", jwt_jwks=url))
    assert verifier is not None
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "k1"})
    assert await rejected(verifier, token) == "signing keys unavailable"


async def test_a_jwks_url_answering_no_key_set(jwks_server: JwksServer, rsa_key: rsa.RSAPrivateKey) -> None:
    jwks_server.jwks = {"keys": []}
    verifier = JwtVerifier.from_settings(settings(jwt_algorithm="RS256", jwt_jwks=jwks_server.url))
    assert verifier is not None
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "k1"})
    assert await rejected(verifier, token) == "signing keys unavailable"
