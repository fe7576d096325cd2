"""Who a process is to Redis: REDIS_USERNAME, with its password read from REDIS_PASSWORD_FILE
(never from the environment or the URL, so it is in no process listing and no log), the CA for
`rediss://` (REDIS_TLS_CA_FILE) and, for a Redis that asks clients for a certificate
(`tls-auth-clients yes`), the client's own (REDIS_TLS_CERT_FILE, REDIS_TLS_KEY_FILE). Read by
shoplib.store.connections for every client it makes, on one Redis or a cluster.

All are read again for each new connection, so a rotated password (ACL SETUSER with the new one,
the file rewritten, the old one removed), a renewed CA or a renewed client certificate is used by
the next connection without a restart; connections already open stay authenticated as they were.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import ConnectionPool, SSLConnection
from redis.credentials import CredentialProvider
from redis.exceptions import ConnectionError as RedisConnectionError

from shoplib import config
from shoplib.security import expiry

REDIS_CA = "redis.ca"  # the CA's name in shop_credential_expiry_seconds
REDIS_CLIENT_CERT = "redis.cert"  # the client certificate's (REDIS_TLS_CERT_FILE)


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
        note_tls(self.ca_certs, self.certfile)
        return super()._connection_arguments()


def note_tls(ca: str | None, cert: str | None = None) -> None:
    """Note the expiry of the Redis CA and of the client certificate, where set
    (shoplib.security.expiry); a file unreadable now is left to the connect to report."""
    # the certificate first: noting one checks all held, and a renewed one is not to be reported expired
    for credential, path in ((REDIS_CLIENT_CERT, cert), (REDIS_CA, ca)):
        if path:
            try:
                expiry.note(credential, Path(path).read_bytes())
            except (OSError, ValueError):
                pass


def renew_tls(pool: ConnectionPool) -> ConnectionPool:
    """The pool with its TLS connections made by FreshTlsConnection (other pools unchanged)."""
    if pool.connection_class is SSLConnection:
        pool.connection_class = FreshTlsConnection
    return pool


def renew_cluster_tls(client: RedisCluster) -> RedisCluster:
    """The cluster client with the TLS connections to every node made by FreshTlsConnection.

    A cluster client makes a connection pool per node (ClusterNode), each from the client's
    shared keyword template (`nodes_manager.connection_kwargs`, with `connection_class`), for the
    nodes it finds in CLUSTER SLOTS at each refresh, including replicas promoted later; only the
    start-up nodes were made before this runs. Both are set here, as redis-py itself injects its
    maintenance-notification handler (`_update_connection_kwargs_for_maint_notifications`)."""
    shared = client.nodes_manager.connection_kwargs
    if shared.get("connection_class") is SSLConnection:
        shared["connection_class"] = FreshTlsConnection
    for node in client.nodes_manager.startup_nodes.values():
        if node.connection_class is SSLConnection:
            node.connection_class = FreshTlsConnection
    return client


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
    return {**found, **_client_certificate()}


def _client_certificate() -> dict[str, str]:
    """REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE, both or neither (config.ConfigError names the
    one missing): the certificate this process shows a Redis that checks its clients'."""
    cert = os.environ.get("REDIS_TLS_CERT_FILE", "").strip()
    key = os.environ.get("REDIS_TLS_KEY_FILE", "").strip()
    if not cert and not key:
        return {}
    if not (cert and key):
        raise config.ConfigError(f"{'REDIS_TLS_KEY_FILE' if cert else 'REDIS_TLS_CERT_FILE'} must be set "
                                 "with the other: a client certificate needs its key")
    return {"ssl_certfile": cert, "ssl_keyfile": key}
