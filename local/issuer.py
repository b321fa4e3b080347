"""The local token issuer: a stand-in for the Cognito user pool, for the local stack only.

Tokens are shaped like Cognito's (claims, RS256, a `kid` in the header) and the keys are served as
a JWKS, so the functions verify them with the very code that verifies Cognito's tokens in AWS.
The private key lives in `.local/` and survives restarts, so a minted token stays valid.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

LOCAL_ISSUER = "http://127.0.0.1:3000/local-user-pool"
LOCAL_CLIENT_ID = "local-client"
DEFAULT_DIRECTORY = Path(__file__).resolve().parent.parent / ".local"
KEY_FILE = "issuer-key.pem"

_SUB_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, LOCAL_ISSUER)
TokenUse = Literal["id", "access"]
ID_USE: TokenUse = "id"


@dataclass(frozen=True)
class LocalIssuer:
    private_key: rsa.RSAPrivateKey
    kid: str
    issuer: str = LOCAL_ISSUER
    client_id: str = LOCAL_CLIENT_ID

    @classmethod
    def load_or_create(
        cls,
        directory: Path = DEFAULT_DIRECTORY,
        *,
        issuer: str = LOCAL_ISSUER,
        client_id: str = LOCAL_CLIENT_ID,
    ) -> LocalIssuer:
        """The key in `directory`, created on first use; `issuer` differs only on ephemeral ports."""
        key = _load_or_create_key(Path(directory) / KEY_FILE)
        kid = jwk_thumbprint(_public_numbers_jwk(key))
        return cls(private_key=key, kid=kid, issuer=issuer, client_id=client_id)

    def public_jwk(self) -> dict[str, str]:
        return {**_public_numbers_jwk(self.private_key), "kid": self.kid, "alg": "RS256", "use": "sig"}

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [self.public_jwk()]}

    def claims(
        self,
        user_id: str,
        *,
        ttl_seconds: int = 3600,
        token_use: TokenUse = ID_USE,
        email: str | None = None,
        extra_claims: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Cognito's claim set; `extra_claims` override it, and a `None` value removes a claim."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": local_sub(user_id),
            "iss": self.issuer,
            "custom:user_id": user_id,
            "token_use": token_use,
            "auth_time": now,
            "iat": now,
            "exp": now + ttl_seconds,
            "jti": str(uuid.uuid4()),
        }
        match token_use:
            case "id":
                claims.update({"aud": self.client_id, "cognito:username": user_id})
            case "access":
                scope = "aws.cognito.signin.user.admin"
                claims.update({"client_id": self.client_id, "username": user_id, "scope": scope})
            case _:
                raise ValueError(f"token_use must be 'id' or 'access', not {token_use!r}")
        if email is not None:
            claims.update({"email": email, "email_verified": True})
        for name, value in (extra_claims or {}).items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def mint(
        self,
        user_id: str,
        *,
        ttl_seconds: int = 3600,
        token_use: TokenUse = ID_USE,
        email: str | None = None,
        extra_claims: Mapping[str, Any] | None = None,
    ) -> str:
        claims = self.claims(
            user_id, ttl_seconds=ttl_seconds, token_use=token_use, email=email, extra_claims=extra_claims
        )
        return jwt.encode(claims, self.private_key, algorithm="RS256", headers={"kid": self.kid})


def local_sub(user_id: str) -> str:
    """A stable uuid per user id, as Cognito's `sub` is stable per user."""
    return str(uuid.uuid5(_SUB_NAMESPACE, user_id))


def jwk_thumbprint(jwk: Mapping[str, str]) -> str:
    """RFC 7638: SHA-256 of the required members, sorted, no whitespace; base64url without padding."""
    required = {name: jwk[name] for name in ("e", "kty", "n")}
    canonical = json.dumps(required, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


def _public_numbers_jwk(key: rsa.RSAPrivateKey) -> dict[str, str]:
    jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {"kty": "RSA", "n": jwk["n"], "e": jwk["e"]}


def _load_or_create_key(path: Path) -> rsa.RSAPrivateKey:
    if not path.exists():
        _create_key(path)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"{path} does not hold an RSA private key")
    return key


def _create_key(path: Path) -> None:
    """Written to a 0600 temp file, then linked into place: whoever links first wins, all read it."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{KEY_FILE}.", suffix=".tmp")
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temp, path)
        except FileExistsError:
            pass
        except OSError:
            os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
