"""Bearer tokens (JWT) checked with PyJWT: asymmetric signature, issuer, audience, expiry.

Keys come from a PEM public key (JWT_PUBLIC_KEY_FILE, default certs/jwt-public.pem) or a JWKS
document (JWT_JWKS_FILE; the token's `kid` picks the key). Only asymmetric algorithms are
accepted: `alg: none` and HMAC (a public key used as a shared secret) are refused.
Errors: `Unauthenticated` with a reason a client can act on; the token itself is never echoed.
Renewed key files are used without a restart: the file is read again before each verification
that is not remembered (a small read, next to ~0.1 ms of signature check) and at least every
LOOK_INTERVAL_S, and a changed file that parses replaces the keys (and forgets the tokens
verified with the previous ones: a dropped key's tokens are refused within that interval).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization

from shoplib import config, log
from shoplib.security import files
from shoplib.security.principal import OPERATOR_SCOPE, Principal, Unauthenticated

__all__ = ["OPERATOR_SCOPE", "Principal", "TokenSettings", "TokenVerifier", "Unauthenticated"]

ALGORITHMS = ["ES256", "RS256", "EdDSA"]  # asymmetric only: whoever verifies cannot mint
LEEWAY_S = 30  # clock skew tolerated on exp / nbf between the issuer and us
ISSUER = "shop-dev"  # the development issuer (`make token`); a deployment names its own
AUDIENCE = "shop-gateway"
LOOK_INTERVAL_S = 1.0  # a remembered token is accepted at most this long after its key was dropped
MAX_VERIFIED_TOKENS = 10_000  # tokens remembered as verified (until their expiry): distinct callers at once
_logger = log.get("shoplib.security.auth")
_REASONS: list[tuple[type[Exception], str]] = [  # most specific first
    (jwt.ExpiredSignatureError, "token expired"), (jwt.ImmatureSignatureError, "token not valid yet"),
    (jwt.InvalidAudienceError, "wrong audience"), (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.MissingRequiredClaimError, "a required claim is missing"),
    (jwt.InvalidAlgorithmError, "signing algorithm not accepted"), (jwt.InvalidSignatureError, "bad signature"),
    (jwt.DecodeError, "malformed token"),
]


@dataclass(frozen=True)
class TokenSettings:
    issuer: str
    audience: str
    public_key_file: Path
    jwks_file: Path | None = None
    leeway_s: int = LEEWAY_S

    @classmethod
    def from_env(cls) -> TokenSettings:
        return cls(issuer=config.optional("JWT_ISSUER", ISSUER, str),
                   audience=config.optional("JWT_AUDIENCE", AUDIENCE, str),
                   public_key_file=config.optional("JWT_PUBLIC_KEY_FILE", files.certs_dir() / files.JWT_PUBLIC_KEY,
                                                   Path),
                   jwks_file=config.optional("JWT_JWKS_FILE", None, Path),
                   leeway_s=config.optional("JWT_LEEWAY_S", LEEWAY_S, int))


def _reason(exc: jwt.PyJWTError) -> str:
    return next((reason for kind, reason in _REASONS if isinstance(exc, kind)), "invalid token")


class TokenVerifier:
    """verify(authorization metadata value) -> Principal, or Unauthenticated(reason).
    A token seen before is not verified again until it expires: the same string is the same
    signature (a client reuses its token for every call; ES256 costs ~0.1 ms of CPU per check)."""

    def __init__(self, settings: TokenSettings) -> None:
        self._settings = settings
        self._verified: dict[str, tuple[Principal, float]] = {}  # token -> (principal, its expiry in epoch s)
        self._path, self._setting = ((settings.jwks_file, "JWT_JWKS_FILE") if settings.jwks_file is not None
                                     else (settings.public_key_file, "JWT_PUBLIC_KEY_FILE"))
        self._raw = files.read(self._path, self._setting)
        self._next_look = time.monotonic() + LOOK_INTERVAL_S
        try:
            self._keys = self._parse(self._raw)
        except (ValueError, jwt.PyJWTError) as exc:
            raise config.ConfigError(f"{self._setting}: {self._path} holds no usable key "
                                     f"({type(exc).__name__})") from None

    def _parse(self, raw: bytes) -> dict[str | None, Any]:
        if self._settings.jwks_file is not None:
            return {key.key_id: key.key for key in jwt.PyJWKSet.from_dict(json.loads(raw)).keys}
        serialization.load_pem_public_key(raw)  # ValueError for a file caught half-written
        return {None: raw}

    def _reload_if_renewed(self) -> None:
        try:
            raw = self._path.read_bytes()
            if raw == self._raw:
                return
            keys = self._parse(raw)
        except (OSError, ValueError, jwt.PyJWTError) as exc:  # mid-write or moved away: keep the keys we have
            _logger.warning("jwt.keys_reload_failed", file=str(self._path), error=type(exc).__name__)
            return
        self._keys, self._raw = keys, raw
        self._verified.clear()  # a token of a key no longer listed must not stay accepted
        _logger.info("jwt.keys_reloaded", file=str(self._path), key_ids=sorted(str(k) for k in keys))

    def _key_for(self, token: str) -> Any:
        kid = jwt.get_unverified_header(token).get("kid") if None not in self._keys else None
        if kid not in self._keys:
            raise Unauthenticated("unknown signing key")
        return self._keys[kid]

    def verify(self, authorization: str | None) -> Principal:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("missing bearer token (authorization: Bearer <JWT>)")
        token = token.strip()
        if (now := time.monotonic()) >= self._next_look:
            self._next_look = now + LOOK_INTERVAL_S
            self._reload_if_renewed()
        known = self._verified.get(token)
        if known is not None and time.time() <= known[1] + self._settings.leeway_s:
            return known[0]
        principal, expiry = self._check(token)
        if len(self._verified) >= MAX_VERIFIED_TOKENS:
            self._verified.clear()  # bounded: a flood of distinct tokens costs verification, not memory
        self._verified[token] = (principal, expiry)
        return principal

    def _check(self, token: str) -> tuple[Principal, float]:
        self._reload_if_renewed()
        try:
            key = self._key_for(token)
            claims = jwt.decode(token, key, algorithms=ALGORITHMS, audience=self._settings.audience,
                                issuer=self._settings.issuer, leeway=self._settings.leeway_s,
                                options={"require": ["exp", "iss", "aud", "sub"]})
        except jwt.PyJWTError as exc:
            raise Unauthenticated(_reason(exc)) from None
        return Principal(str(claims["sub"]), frozenset(str(claims.get("scope", "")).split())), float(claims["exp"])
