"""Cognito JWT verification: every way a token can be wrong is a 401 with the right message."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from local.issuer import LOCAL_CLIENT_ID, LOCAL_ISSUER, LocalIssuer, local_sub
from shared.errors import Forbidden, NotAuthenticated
from shared.http import auth
from shared.http.auth import (
    AuthenticatedUser,
    AuthSettings,
    JwksCache,
    TokenVerifier,
    authenticate,
    bearer_token,
    require_path_user,
)
from shared.http.errors import Problem
from tests.fakes.clock import SettableClock as FakeClock
from tests.fixtures.jwks_server import JwksServer, serving

JWKS_URL = f"{LOCAL_ISSUER}/.well-known/jwks.json"


class FakeJwks:
    """An injected fetch: serves whatever the test publishes and counts the calls."""

    def __init__(self, *issuers: LocalIssuer) -> None:
        self.publish(*issuers)
        self.calls: list[str] = []
        self.fail = False

    def publish(self, *issuers: LocalIssuer) -> None:
        self.document = {"keys": [issuer.public_jwk() for issuer in issuers]}

    def __call__(self, url: str) -> dict:
        self.calls.append(url)
        if self.fail:
            raise OSError("connection refused by 10.0.0.7")
        return self.document


@pytest.fixture(scope="module")
def issuer(tmp_path_factory) -> LocalIssuer:
    return LocalIssuer.load_or_create(tmp_path_factory.mktemp("issuer"))


@pytest.fixture(scope="module")
def other_issuer(tmp_path_factory) -> LocalIssuer:
    return LocalIssuer.load_or_create(tmp_path_factory.mktemp("other-issuer"))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


@pytest.fixture
def jwks(issuer) -> FakeJwks:
    return FakeJwks(issuer)


def settings(**env: str) -> AuthSettings:
    return AuthSettings.from_env({"JWT_ISSUER": LOCAL_ISSUER, "JWT_AUDIENCE": LOCAL_CLIENT_ID, **env})


@pytest.fixture
def make_verifier(jwks, clock):
    def make(**env: str) -> TokenVerifier:
        return TokenVerifier(settings(**env), JwksCache(JWKS_URL, jwks, clock=clock))

    return make


@pytest.fixture
def verifier(make_verifier) -> TokenVerifier:
    return make_verifier()


def refused(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(NotAuthenticated) as caught:
        verifier.verify(token)
    assert Problem.of(caught.value).status == 401
    return caught.value.message


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict, claims: dict, signature: bytes | None = None, key: bytes | None = None) -> str:
    """A compact JWS built by hand, for the tokens PyJWT refuses to produce."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    if key is not None:
        signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature or b'')}"


# --- settings -----------------------------------------------------------------------------------


def test_settings_defaults():
    parsed = settings()
    assert parsed.audiences == {LOCAL_CLIENT_ID}
    assert parsed.token_uses == {"id"}
    assert parsed.user_id_claim == "custom:user_id"
    assert parsed.allow_sub_fallback is False
    assert parsed.leeway_seconds == 30
    assert parsed.jwks_url == JWKS_URL


def test_settings_lists_and_overrides():
    parsed = settings(
        JWT_AUDIENCE=" a , b,,",
        JWT_TOKEN_USE="id, access",
        JWT_ALLOW_SUB_FALLBACK="TRUE",
        JWT_LEEWAY_SECONDS="5",
        JWT_JWKS_URL="https://keys.example.com/jwks.json",
    )
    assert parsed.audiences == {"a", "b"}
    assert parsed.token_uses == {"id", "access"}
    assert parsed.allow_sub_fallback is True
    assert parsed.leeway_seconds == 5
    assert parsed.jwks_url == "https://keys.example.com/jwks.json"


@pytest.mark.parametrize(
    "env",
    [
        {"JWT_ISSUER": ""},
        {"JWT_AUDIENCE": " , "},
        {"JWT_TOKEN_USE": "refresh"},
        {"JWT_ALLOW_SUB_FALLBACK": "maybe"},
        {"JWT_LEEWAY_SECONDS": "soon"},
        {"JWT_LEEWAY_SECONDS": "-1"},
        {"JWT_JWKS_URL": "file:///etc/passwd"},
        {"JWT_JWKS_URL": "http://keys.example.com/jwks.json"},
    ],
)
def test_settings_refuse_bad_configuration(env):
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        settings(**env)


# --- the happy path -----------------------------------------------------------------------------


def test_valid_local_token_yields_the_user(issuer, verifier, jwks):
    user = verifier.verify(issuer.mint("user-1", email="u1@example.com"))
    assert user == AuthenticatedUser(user_id="user-1", token_use="id")
    assert user.claims["email"] == "u1@example.com"
    assert user.claims["sub"] == local_sub("user-1")
    assert jwks.calls == [JWKS_URL]
    verifier.verify(issuer.mint("user-2"))
    assert len(jwks.calls) == 1, "keys are cached"


def test_claims_of_the_result_are_read_only(issuer, verifier):
    user = verifier.verify(issuer.mint("user-1"))
    with pytest.raises(TypeError):
        user.claims["custom:user_id"] = "someone-else"  # type: ignore[index]


# --- time ---------------------------------------------------------------------------------------


def test_expiry_within_leeway_is_accepted(issuer, verifier):
    now = int(time.time())
    token = issuer.mint("user-1", extra_claims={"iat": now - 600, "exp": now - 10})
    assert verifier.verify(token).user_id == "user-1"


def test_expired_beyond_leeway(issuer, verifier):
    now = int(time.time())
    token = issuer.mint("user-1", extra_claims={"iat": now - 600, "exp": now - 120})
    assert refused(verifier, token) == "token expired"


def test_missing_exp(issuer, verifier):
    assert refused(verifier, issuer.mint("user-1", extra_claims={"exp": None})) == "missing exp"


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_not_yet_valid(issuer, verifier, claim):
    token = issuer.mint("user-1", extra_claims={claim: int(time.time()) + 120})
    assert refused(verifier, token) == "token not yet valid"


# --- issuer, audience, token_use, user id -------------------------------------------------------


@pytest.mark.parametrize("iss", [LOCAL_ISSUER + "/", "http://127.0.0.1:3000/other-pool", "https://evil.example.com"])
def test_wrong_issuer(issuer, verifier, iss):
    assert refused(verifier, issuer.mint("user-1", extra_claims={"iss": iss})) == "wrong issuer"


@pytest.mark.parametrize("aud", ["other-client", ["other-client"], None])
def test_wrong_audience(issuer, verifier, aud):
    token = issuer.mint("user-1", extra_claims={"aud": aud})
    assert refused(verifier, token) == "wrong audience"


def test_audience_list_containing_our_client(issuer, verifier):
    token = issuer.mint("user-1", extra_claims={"aud": ["other-client", LOCAL_CLIENT_ID]})
    assert verifier.verify(token).user_id == "user-1"


def test_access_token_accepted_by_client_id_when_allowed(issuer, make_verifier):
    token = issuer.mint("user-1", token_use="access")
    assert "aud" not in jwt.decode(token, options={"verify_signature": False})
    user = make_verifier(JWT_TOKEN_USE="id,access").verify(token)
    assert (user.user_id, user.token_use) == ("user-1", "access")


def test_access_token_with_another_client_id(issuer, make_verifier):
    token = issuer.mint("user-1", token_use="access", extra_claims={"client_id": "other-client"})
    assert refused(make_verifier(JWT_TOKEN_USE="id,access"), token) == "wrong audience"


def test_access_token_refused_when_only_id_tokens_allowed(issuer, verifier):
    assert refused(verifier, issuer.mint("user-1", token_use="access")) == "wrong token_use"


def test_id_token_refused_when_only_access_tokens_allowed(issuer, make_verifier):
    assert refused(make_verifier(JWT_TOKEN_USE="access"), issuer.mint("user-1")) == "wrong token_use"


@pytest.mark.parametrize("token_use", ["refresh", None, ["id"]])
def test_wrong_token_use(issuer, verifier, token_use):
    token = issuer.mint("user-1", extra_claims={"token_use": token_use})
    assert refused(verifier, token) == "wrong token_use"


@pytest.mark.parametrize("value", [None, "", "  ", 42])
def test_missing_user_id(issuer, verifier, value):
    token = issuer.mint("user-1", extra_claims={"custom:user_id": value})  # None: the claim is absent
    assert refused(verifier, token) == "missing user id"


def test_sub_fallback_only_when_configured(issuer, make_verifier):
    token = issuer.mint("user-1", extra_claims={"custom:user_id": None})
    user = make_verifier(JWT_ALLOW_SUB_FALLBACK="true").verify(token)
    assert user.user_id == local_sub("user-1")


def test_sub_fallback_does_not_replace_a_present_claim(issuer, make_verifier):
    fallback = make_verifier(JWT_ALLOW_SUB_FALLBACK="true")
    assert fallback.verify(issuer.mint("user-1")).user_id == "user-1"
    token = issuer.mint("user-1", extra_claims={"custom:user_id": ""})
    assert refused(fallback, token) == "missing user id"


def test_custom_user_id_claim(issuer, make_verifier):
    token = issuer.mint("user-1", extra_claims={"custom:tenant_user": "t-9"})
    assert make_verifier(JWT_USER_ID_CLAIM="custom:tenant_user").verify(token).user_id == "t-9"


# --- signatures and algorithms ------------------------------------------------------------------


def test_tampered_payload(issuer, verifier):
    header, _, signature = issuer.mint("user-1").split(".")
    forged_claims = b64(json.dumps(issuer.claims("admin")).encode())
    assert refused(verifier, f"{header}.{forged_claims}.{signature}") == "invalid signature"


def test_tampered_signature(issuer, verifier):
    header, payload, signature = issuer.mint("user-1").split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)))
    raw[0] ^= 0xFF
    assert refused(verifier, f"{header}.{payload}.{b64(bytes(raw))}") == "invalid signature"


def test_signed_by_another_key_with_our_kid(issuer, other_issuer, verifier):
    token = jwt.encode(
        issuer.claims("user-1"), other_issuer.private_key, algorithm="RS256", headers={"kid": issuer.kid}
    )
    assert refused(verifier, token) == "invalid signature"


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none(issuer, verifier, jwks, alg):
    token = forge({"alg": alg, "typ": "JWT", "kid": issuer.kid}, issuer.claims("user-1"))
    assert refused(verifier, token) == "unsupported algorithm"
    assert jwks.calls == [], "refused before any key is fetched"


def test_hs256_signed_with_the_public_key_pem(issuer, verifier, jwks):
    """The classic confusion attack: the public key, which anyone has, used as an HMAC secret."""
    pem = issuer.private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    token = forge({"alg": "HS256", "typ": "JWT", "kid": issuer.kid}, issuer.claims("user-1"), key=pem)
    assert refused(verifier, token) == "unsupported algorithm"
    assert jwks.calls == []


@pytest.mark.parametrize("alg", ["HS256", "HS512", "RS512", "ES256", "PS256"])
def test_only_rs256(issuer, verifier, alg):
    token = forge({"alg": alg, "kid": issuer.kid}, issuer.claims("user-1"), signature=b"x" * 64)
    assert refused(verifier, token) == "unsupported algorithm"


def test_jwks_entries_that_are_not_rs256_signing_keys_are_ignored(issuer, verifier, jwks):
    secret = {"kty": "oct", "k": b64(b"0" * 32), "kid": "hmac-key"}
    not_for_signing = {**issuer.public_jwk(), "kid": "enc-key", "use": "enc"}
    jwks.document = {"keys": [secret, not_for_signing, issuer.public_jwk()]}
    token = forge({"alg": "RS256", "kid": "hmac-key"}, issuer.claims("user-1"), key=b"0" * 32)
    assert refused(verifier, token) == "unknown signing key"
    relabelled = jwt.encode(issuer.claims("user-1"), issuer.private_key, "RS256", headers={"kid": "enc-key"})
    assert refused(verifier, relabelled) == "unknown signing key"


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c", "....", "x" * 20_000, f"{b64(b'[1]')}.{b64(b'{}')}.sig"])
def test_malformed(verifier, token):
    assert refused(verifier, token) == "malformed token"


def test_missing_kid(issuer, verifier):
    token = jwt.encode(issuer.claims("user-1"), issuer.private_key, algorithm="RS256")
    assert refused(verifier, token) == "malformed token"


# --- the key cache ------------------------------------------------------------------------------


def test_unknown_kid_refreshes_once_then_succeeds_after_rotation(issuer, other_issuer, verifier, jwks, clock):
    verifier.verify(issuer.mint("user-1"))
    assert len(jwks.calls) == 1
    clock.now += 3600
    jwks.publish(issuer, other_issuer)  # the pool rotates in a new key
    assert verifier.verify(other_issuer.mint("user-1")).user_id == "user-1"
    assert len(jwks.calls) == 2
    verifier.verify(other_issuer.mint("user-2"))
    assert len(jwks.calls) == 2


def test_burst_of_unknown_kids_refreshes_at_most_once_per_interval(issuer, verifier, jwks, clock):
    verifier.verify(issuer.mint("user-1"))
    clock.now += 60
    for n in range(50):
        token = jwt.encode(issuer.claims("user-1"), issuer.private_key, "RS256", headers={"kid": f"random-{n}"})
        assert refused(verifier, token) == "unknown signing key"
    assert len(jwks.calls) == 2
    clock.now += 29
    refused(verifier, jwt.encode(issuer.claims("u"), issuer.private_key, "RS256", headers={"kid": "again"}))
    assert len(jwks.calls) == 2
    clock.now += 2
    refused(verifier, jwt.encode(issuer.claims("u"), issuer.private_key, "RS256", headers={"kid": "again"}))
    assert len(jwks.calls) == 3
    assert verifier.verify(issuer.mint("user-1")).user_id == "user-1", "known keys still work"


def test_jwks_failure_is_a_401_without_internals(issuer, verifier, jwks, clock, caplog):
    jwks.fail = True
    message = refused(verifier, issuer.mint("user-1"))
    assert message == "unable to verify token"
    assert "10.0.0.7" not in message
    assert "connection refused by 10.0.0.7" in caplog.text, "the cause is logged"
    refused(verifier, issuer.mint("user-1"))
    assert len(jwks.calls) == 1, "failures back off too"
    jwks.fail = False
    clock.now += 10
    assert verifier.verify(issuer.mint("user-1")).user_id == "user-1"


def test_jwks_without_usable_keys_is_unable_to_verify(issuer, verifier, jwks):
    jwks.document = {"keys": [{"kty": "oct", "k": "AAAA", "kid": "x"}]}
    assert refused(verifier, issuer.mint("user-1")) == "unable to verify token"


# --- headers, entry point, path user ------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["Bearer ", "bearer ", "BEARER ", "BeArEr   ", "", "  "])
def test_bearer_scheme_is_optional_and_case_insensitive(issuer, verifier, scheme):
    token = issuer.mint("user-1")
    assert authenticate({"authorization": f"{scheme}{token}"}, verifier).user_id == "user-1"
    assert authenticate(f"{scheme}{token}", verifier).user_id == "user-1"


def test_header_name_case_does_not_matter(issuer, verifier):
    assert authenticate({"Authorization": issuer.mint("user-1")}, verifier).user_id == "user-1"


@pytest.mark.parametrize("headers", [{}, {"authorization": ""}, {"authorization": "Bearer"}, None, " "])
def test_missing_token(verifier, headers):
    with pytest.raises(NotAuthenticated, match="missing token"):
        authenticate(headers, verifier)


@pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", "Bearer a b"])
def test_other_schemes_are_malformed(value):
    with pytest.raises(NotAuthenticated, match="malformed token"):
        bearer_token(value)


def test_require_path_user(issuer, verifier):
    user = verifier.verify(issuer.mint("user-1"))
    require_path_user(user, "user-1")
    with pytest.raises(Forbidden) as caught:
        require_path_user(user, "user-2")
    assert Problem.of(caught.value).status == 403


# --- over real HTTP -----------------------------------------------------------------------------


@pytest.fixture
def jwks_server(issuer):
    with serving(JwksServer(issuer.jwks())) as server:
        yield server


def test_jwks_over_real_http_with_the_default_fetch(issuer, jwks_server, monkeypatch):
    """The issuer URL decides the JWKS URL; the module cache and urllib do the rest."""
    pool = f"http://127.0.0.1:{jwks_server.server_address[1]}/local-user-pool"
    pool_issuer = LocalIssuer(issuer.private_key, issuer.kid, issuer=pool)
    monkeypatch.setenv("JWT_ISSUER", pool)
    monkeypatch.setenv("JWT_AUDIENCE", LOCAL_CLIENT_ID)
    auth.default_verifier.cache_clear()
    try:
        for user_id in ("user-1", "user-2"):
            user = authenticate({"authorization": f"Bearer {pool_issuer.mint(user_id)}"})
            assert user.user_id == user_id
    finally:
        auth.default_verifier.cache_clear()
    assert jwks_server.requests == ["/local-user-pool/.well-known/jwks.json"]


def test_unreachable_jwks_over_real_http(issuer, jwks_server):
    port = jwks_server.server_address[1]
    jwks_server.shutdown()
    jwks_server.server_close()
    verifier = TokenVerifier(settings(JWT_JWKS_URL=f"http://127.0.0.1:{port}/local-user-pool/.well-known/jwks.json"))
    assert refused(verifier, issuer.mint("user-1")) == "unable to verify token"
