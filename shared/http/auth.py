"""Cognito JWT verification for the functions: who is calling, proven by the pool's signature.

API Gateway's JWT authorizer does not sit in front of Function URLs, so the streaming functions
check tokens themselves, exactly as strictly: RS256 only, the pool's keys, issuer, expiry, token
use, audience and the user-id claim. Every refusal is a 401 with a short message that is safe to
show a client; the reason is logged. Only PyJWT and the standard library: this runs in every cold
start.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import jwt

from shared.aws_clients import JWKS
from shared.errors import Forbidden, NotAuthenticated
from shared.settings import AuthSection, settings

logger = logging.getLogger(__name__)

ALGORITHM = "RS256"
AUDIENCE_CLAIMS = {"id": "aud", "access": "client_id"}
"""Where each kind of Cognito token names its app client."""
TOKEN_USES = frozenset(AUDIENCE_CLAIMS)
MAX_TOKEN_LENGTH = 16_384
MAX_JWKS_BYTES = 256 * 1024
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

JwksFetch = Callable[[str], Mapping[str, Any]]
"""Takes the JWKS URL, returns the parsed JSON document; raises on any failure."""


@dataclass(frozen=True)
class AuthSettings:
    """What a function trusts, read once from its environment (the CDK stack sets the same names)."""

    issuer: str
    audiences: frozenset[str]
    token_uses: frozenset[str] = frozenset({"id"})
    user_id_claim: str = "custom:user_id"
    allow_sub_fallback: bool = False
    leeway_seconds: float = 30.0
    jwks_url: str = ""

    def __post_init__(self) -> None:
        if not self.issuer:
            raise ValueError("JWT_ISSUER is required")
        if not self.audiences:
            raise ValueError("JWT_AUDIENCE needs at least one app client id")
        if not self.token_uses or not self.token_uses <= TOKEN_USES:
            raise ValueError(f"JWT_TOKEN_USE must be a comma list of {sorted(TOKEN_USES)}")
        if self.leeway_seconds < 0:
            raise ValueError("JWT_LEEWAY_SECONDS must not be negative")
        if not self.jwks_url:
            object.__setattr__(self, "jwks_url", f"{self.issuer.rstrip('/')}/.well-known/jwks.json")
        _check_jwks_url(self.jwks_url)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AuthSettings:
        """From the function's settings (`shared.settings.AuthSection`), or from `environ` when given."""
        section = settings(AuthSection) if environ is None else AuthSection.from_env(environ)
        return cls(
            issuer=section.jwt_issuer,
            audiences=frozenset(section.jwt_audience),
            token_uses=frozenset(section.jwt_token_use),
            user_id_claim=section.jwt_user_id_claim,
            allow_sub_fallback=section.jwt_allow_sub_fallback,
            leeway_seconds=section.jwt_leeway_seconds,
            jwks_url=section.jwt_jwks_url,
        )


def _check_jwks_url(url: str) -> None:
    """Keys come over HTTPS; plain HTTP only from this machine (the local stack)."""
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS):
        return
    raise ValueError(f"JWKS URL must be https (or http on loopback): {url}")


def fetch_jwks(url: str, *, timeout: float = JWKS.connect_timeout) -> Mapping[str, Any]:
    """One GET with a short timeout: a slow issuer must not eat the function's time budget."""
    _check_jwks_url(url)
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 - checked above
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - checked above
        body = response.read(MAX_JWKS_BYTES + 1)
    if len(body) > MAX_JWKS_BYTES:
        raise ValueError("JWKS document too large")
    document = json.loads(body)
    if not isinstance(document, dict):
        raise ValueError("JWKS document is not an object")
    return document


class JwksCache:
    """The pool's signing keys, fetched once per container and again only for an unknown `kid`.

    Fetches are spaced by `min_refresh_interval` (`failure_backoff` after a failed one), so tokens
    with made-up kids cannot turn every request into a call to the issuer.
    """

    def __init__(
        self,
        url: str,
        fetch: JwksFetch = fetch_jwks,
        *,
        min_refresh_interval: float = 30.0,
        failure_backoff: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._fetch = fetch
        self._min_refresh_interval = min_refresh_interval
        self._failure_backoff = failure_backoff
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] | None = None
        self._next_fetch_at = float("-inf")
        self._lock = threading.Lock()

    def key_for(self, kid: str) -> jwt.PyJWK:
        with self._lock:
            key = (self._keys or {}).get(kid)
            if key is not None:
                return key
            if self._clock() >= self._next_fetch_at:
                self._refresh()
            elif self._keys is None:
                raise NotAuthenticated("unable to verify token")
            key = (self._keys or {}).get(kid)
        if key is None:
            raise NotAuthenticated("unknown signing key")
        return key

    def warm(self) -> None:
        """At init: the keys fetched before the first token needs them, so no cold request waits for the
        issuer (a TLS connection to Cognito, then the document). A fetch that fails here is left to the first
        token, which tries again at once: init sets no backoff."""
        with self._lock:
            if self._keys is not None:
                return
            try:
                self._refresh()
            except NotAuthenticated:
                self._next_fetch_at = float("-inf")

    def _refresh(self) -> None:
        try:
            keys = _rs256_keys(self._fetch(self.url))
        except Exception as exc:
            self._next_fetch_at = self._clock() + self._failure_backoff
            logger.warning("JWKS fetch from %s failed: %s: %s", self.url, type(exc).__name__, exc)
            raise NotAuthenticated("unable to verify token") from exc
        self._keys = keys
        self._next_fetch_at = self._clock() + self._min_refresh_interval
        logger.info("JWKS loaded from %s: %d key(s)", self.url, len(keys))


def _rs256_keys(document: Mapping[str, Any]) -> dict[str, jwt.PyJWK]:
    """Only RSA signing keys meant for RS256: an `oct` or other-algorithm entry is never a candidate."""
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise ValueError("JWKS document has no key list")
    usable = [
        entry
        for entry in entries
        if isinstance(entry, dict)
        and entry.get("kty") == "RSA"
        and entry.get("alg", ALGORITHM) == ALGORITHM
        and entry.get("use", "sig") == "sig"
        and isinstance(entry.get("kid"), str)
    ]
    return {key.key_id: key for key in jwt.PyJWKSet(usable) if key.key_id}


_CACHES: dict[str, JwksCache] = {}


def jwks_cache(url: str) -> JwksCache:
    """The container-wide cache for one JWKS URL."""
    cache = _CACHES.get(url)
    if cache is None:
        cache = _CACHES.setdefault(url, JwksCache(url))
    return cache


@dataclass(frozen=True)
class AuthenticatedUser:
    user_id: str
    token_use: str
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "claims", MappingProxyType(dict(self.claims)))


# Most specific first: InvalidSignatureError is a DecodeError, all are PyJWTErrors.
_REFUSALS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.ImmatureSignatureError, "token not yet valid"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.InvalidSignatureError, "invalid signature"),
    (jwt.InvalidAlgorithmError, "unsupported algorithm"),
    (jwt.DecodeError, "malformed token"),
)


class TokenVerifier:
    """Turns a bearer token into an `AuthenticatedUser`, or raises `NotAuthenticated`."""

    def __init__(self, settings: AuthSettings, keys: JwksCache | None = None) -> None:
        self.settings = settings
        self.keys = keys or jwks_cache(settings.jwks_url)

    def verify(self, token: str) -> AuthenticatedUser:
        try:
            return self._verify(token)
        except NotAuthenticated as exc:
            logger.info("token refused: %s", exc.message)
            raise

    def _verify(self, token: str) -> AuthenticatedUser:
        if len(token) > MAX_TOKEN_LENGTH:
            raise NotAuthenticated("malformed token")
        header = _unverified_header(token)
        if header.get("alg") != ALGORITHM:
            raise NotAuthenticated("unsupported algorithm")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise NotAuthenticated("malformed token")
        claims = self._decode(token, self.keys.key_for(kid))
        token_use = allowed_token_use(claims, self.settings.token_uses)
        if not self._audience_ok(claims, token_use):
            raise NotAuthenticated("wrong audience")
        user_id = claimed_user_id(claims, self.settings.user_id_claim, self.settings.allow_sub_fallback)
        return AuthenticatedUser(user_id=user_id, token_use=token_use, claims=claims)

    def _decode(self, token: str, key: jwt.PyJWK) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                issuer=self.settings.issuer,
                leeway=self.settings.leeway_seconds,
                options={"require": ["exp", "iss"], "verify_aud": False, "enforce_minimum_key_length": True},
            )
        except jwt.MissingRequiredClaimError as exc:
            raise NotAuthenticated(f"missing {exc.claim}") from exc
        except jwt.PyJWTError as exc:
            message = next((text for kind, text in _REFUSALS if isinstance(exc, kind)), "invalid token")
            raise NotAuthenticated(message) from exc

    def _audience_ok(self, claims: Mapping[str, Any], token_use: str) -> bool:
        """ID tokens name the app client in `aud`; Cognito access tokens in `client_id`."""
        name = AUDIENCE_CLAIMS[token_use]
        value = claims.get(name)
        if isinstance(value, str):
            return value in self.settings.audiences
        if name == "aud" and isinstance(value, list):
            return any(isinstance(item, str) and item in self.settings.audiences for item in value)
        return False


def allowed_token_use(claims: Mapping[str, Any], token_uses: frozenset[str]) -> str:
    """The token's `token_use`, if it is one the function accepts (an ID token, by default): one rule for
    every route, whether this module verified the token or API Gateway's authorizer did."""
    token_use = claims.get("token_use")
    if not isinstance(token_use, str) or token_use not in token_uses:
        raise NotAuthenticated("wrong token_use")
    return token_use


def claimed_user_id(claims: Mapping[str, Any], user_id_claim: str, allow_sub_fallback: bool) -> str:
    """The user a token speaks for (`custom:user_id`, or `sub` where allowed); a token without one is
    not authenticated, on every route."""
    claim = "sub" if user_id_claim not in claims and allow_sub_fallback else user_id_claim
    value = claims.get(claim)
    if not isinstance(value, str) or not value.strip():
        raise NotAuthenticated("missing user id")
    return value


def _unverified_header(token: str) -> dict[str, Any]:
    try:
        return jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise NotAuthenticated("malformed token") from exc


def bearer_token(authorization: str | None) -> str:
    """The token from an `Authorization` value; the `Bearer` word is optional and case-insensitive."""
    parts = (authorization or "").split()
    if parts and parts[0].lower() == "bearer":
        parts = parts[1:]
    if not parts:
        raise NotAuthenticated("missing token")
    if len(parts) > 1:
        raise NotAuthenticated("malformed token")
    return parts[0]


def _authorization(headers: Mapping[str, str] | str | None) -> str | None:
    if headers is None or isinstance(headers, str):
        return headers
    value = headers.get("authorization")
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == "authorization"), None)
    return value


@functools.cache
def default_verifier() -> TokenVerifier:
    """Built once per container from the environment; a bad configuration fails loudly (500)."""
    return TokenVerifier(AuthSettings.from_env())


def authenticate(headers: Mapping[str, str] | str | None, verifier: TokenVerifier | None = None) -> AuthenticatedUser:
    """The handlers' one call: request headers (or the `Authorization` value) in, the user out."""
    token = bearer_token(_authorization(headers))
    return (verifier or default_verifier()).verify(token)


def require_path_user(user: AuthenticatedUser, path_user_id: str) -> None:
    """The `{userId}` in the path must be the caller: no cross-user access, ever."""
    if user.user_id != path_user_id:
        raise Forbidden("token user does not match the path")
