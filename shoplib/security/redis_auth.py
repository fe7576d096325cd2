"""Who a process is to Redis: REDIS_USERNAME, with its password read from REDIS_PASSWORD_FILE
(never from the environment or the URL, so it is in no process listing and no log), and the CA
for `rediss://` (REDIS_TLS_CA_FILE). Read by shoplib.redis_conn for every client it makes.

Both are read again for each new connection, so a rotated password (ACL SETUSER with the new one,
the file rewritten, the old one removed) or a renewed CA is used by the next connection without a
restart; connections already open stay authenticated as they were.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio.connection import ConnectionPool, SSLConnection
from redis.credentials import CredentialProvider
from redis.exceptions import ConnectionError as RedisConnectionError

from shoplib import config
from shoplib.security import expiry

REDIS_CA = "redis.ca"  # the CA's name in shop_credential_expiry_seconds


def username() -> str:
    return os.environ.get("REDIS_USERNAME", "").strip()


class PasswordFile(CredentialProvider):
    """(user, password) as the file holds them when a connection is made; redis-py asks at each
    connect. An unreadable file then is a connection error (the outage rules retry it)."""

    def __init__(self, user: str, path: Path) -> None:
        self.user, self.path = user, path

    def get_credentials(self) -> tuple[str, str]:
        try:
            return self.user, self.path.read_text().strip()
        except OSError as exc:
            raise RedisConnectionError(f"REDIS_PASSWORD_FILE: cannot read {self.path} ({exc.strerror})") from None

    async def get_credentials_async(self) -> tuple[str, str]:
        return self.get_credentials()

    def __repr__(self) -> str:
        return f"PasswordFile({self.user!r}, {str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PasswordFile) and (self.user, self.path) == (other.user, other.path)

    def __hash__(self) -> int:
        return hash((self.user, self.path))


class FreshTlsConnection(SSLConnection):
    """redis-py's TLS connection with its SSL context built from the files at each connect
    (redis-py keeps the first one for the connection's life, through reconnects)."""

    def _connection_arguments(self) -> Mapping[str, Any]:
        self.ssl_context.context = None
        if self.ca_certs:
            note_ca(self.ca_certs)
        return super()._connection_arguments()


def note_ca(path: str) -> None:
    """Note the Redis CA's expiry (shoplib.security.expiry); a file unreadable now is left to the connect to report."""
    try:
        expiry.note(REDIS_CA, Path(path).read_bytes())
    except (OSError, ValueError):
        pass


def renew_tls(pool: ConnectionPool) -> ConnectionPool:
    """The pool with its TLS connections made by FreshTlsConnection (other pools unchanged)."""
    if pool.connection_class is SSLConnection:
        pool.connection_class = FreshTlsConnection
    return pool


def connection_kwargs(url: str = "") -> dict[str, Any]:
    """Extra keyword arguments for every redis-py client of `url` this process makes (none by
    default). A URL that names a user itself keeps it (redis-py lets the URL win), with the
    password file read once: rotation needs the user in REDIS_USERNAME, not in the URL.
    Raises config.ConfigError when REDIS_USERNAME is set and the password file cannot be read."""
    found: dict[str, Any] = {}
    if user := username():
        provider = PasswordFile(user, Path(config.required("REDIS_PASSWORD_FILE")))
        try:
            secret = provider.get_credentials()[1]
        except RedisConnectionError as exc:
            raise config.ConfigError(str(exc)) from None
        named = urlsplit(url)
        found = ({"username": user, "password": secret} if named.username or named.password
                 else {"credential_provider": provider})
    if ca := os.environ.get("REDIS_TLS_CA_FILE", "").strip():
        found["ssl_ca_certs"] = ca
    return found
