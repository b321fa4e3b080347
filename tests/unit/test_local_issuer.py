"""The local token issuer: a persistent key, a Cognito-shaped token, and the CLI that prints one."""

from __future__ import annotations

import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import jwt
import pytest

from local.__main__ import build_parser
from local.issuer import (
    DEFAULT_DIRECTORY,
    KEY_FILE,
    LOCAL_CLIENT_ID,
    LOCAL_ISSUER,
    LocalIssuer,
    jwk_thumbprint,
    local_sub,
)
from shared.http.auth import AuthSettings, JwksCache, TokenVerifier

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def issuer(tmp_path_factory) -> LocalIssuer:
    return LocalIssuer.load_or_create(tmp_path_factory.mktemp("issuer"))


def decode(issuer: LocalIssuer, token: str) -> dict:
    key = jwt.PyJWK(issuer.public_jwk())
    return jwt.decode(token, key, algorithms=["RS256"], options={"verify_aud": False})


def test_rfc7638_thumbprint_example():
    """The worked example of RFC 7638 section 3.1."""
    jwk = {
        "kty": "RSA",
        "n": (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJE"
            "CPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2Q"
            "vzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6"
            "WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        ),
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_key_is_created_private_and_reused(tmp_path):
    directory = tmp_path / "state"
    first = LocalIssuer.load_or_create(directory)
    key_file = directory / KEY_FILE
    assert key_file.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    again = LocalIssuer.load_or_create(directory)
    assert again.kid == first.kid
    assert first.kid == jwk_thumbprint(first.public_jwk())
    assert sorted(p.name for p in directory.iterdir()) == [KEY_FILE]


def test_concurrent_creation_agrees_on_one_key(tmp_path):
    kids: list[str] = []
    barrier = threading.Barrier(6)

    def create() -> None:
        barrier.wait()
        kids.append(LocalIssuer.load_or_create(tmp_path).kid)

    threads = [threading.Thread(target=create) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(kids) == 6
    assert len(set(kids)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [KEY_FILE]


def test_jwks_holds_only_the_public_key(issuer):
    (key,) = issuer.jwks()["keys"]
    assert key == {"kty": "RSA", "n": key["n"], "e": "AQAB", "kid": issuer.kid, "alg": "RS256", "use": "sig"}


def test_id_token_is_cognito_shaped(issuer):
    before = int(time.time())
    token = issuer.mint("user-1", ttl_seconds=600, email="u1@example.com")
    assert jwt.get_unverified_header(token) == {"alg": "RS256", "typ": "JWT", "kid": issuer.kid}
    claims = decode(issuer, token)
    assert claims["iss"] == LOCAL_ISSUER
    assert claims["aud"] == LOCAL_CLIENT_ID
    assert "client_id" not in claims
    assert claims["token_use"] == "id"
    assert claims["custom:user_id"] == claims["cognito:username"] == "user-1"
    assert claims["email"] == "u1@example.com"
    assert claims["exp"] - claims["iat"] == 600
    assert before <= claims["iat"] == claims["auth_time"] <= int(time.time())


def test_sub_is_a_stable_uuid_per_user(issuer):
    sub = decode(issuer, issuer.mint("user-1"))["sub"]
    assert sub == local_sub("user-1") == decode(issuer, issuer.mint("user-1"))["sub"]
    assert sub != local_sub("user-2")
    assert len(sub) == 36


def test_access_token_names_the_client_instead_of_an_audience(issuer):
    claims = decode(issuer, issuer.mint("user-1", token_use="access"))
    assert claims["token_use"] == "access"
    assert claims["client_id"] == LOCAL_CLIENT_ID
    assert "aud" not in claims


def test_extra_claims_override_and_none_removes(issuer):
    claims = issuer.claims("user-1", extra_claims={"custom:user_id": None, "nbf": 5, "iss": "x"})
    assert "custom:user_id" not in claims
    assert (claims["nbf"], claims["iss"]) == (5, "x")


def test_unknown_token_use_is_refused(issuer):
    with pytest.raises(ValueError, match="token_use"):
        issuer.claims("user-1", token_use="refresh")  # type: ignore[arg-type]


def test_cli_prints_one_token_that_verifies():
    result = subprocess.run(
        [sys.executable, "-m", "local", "token", "--user-id", "u1", "--ttl", "120"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert result.stdout == lines[0] + "\n"
    local_issuer = LocalIssuer.load_or_create(DEFAULT_DIRECTORY)
    settings = AuthSettings.from_env({"JWT_ISSUER": LOCAL_ISSUER, "JWT_AUDIENCE": LOCAL_CLIENT_ID})
    verifier = TokenVerifier(settings, JwksCache(settings.jwks_url, lambda _url: local_issuer.jwks()))
    user = verifier.verify(lines[0])
    assert user.user_id == "u1"
    assert user.claims["exp"] - user.claims["iat"] == 120


def test_cli_requires_a_command_and_a_user_id():
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args([])
    with pytest.raises(SystemExit):
        parser.parse_args(["token"])
    assert parser.parse_args(["dev"]).command == "dev"
