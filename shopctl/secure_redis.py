"""The stack's private Redis under SECURE=1: the `default` user off, one ACL user per service
(shoplib.security.acl) with a generated password in an owner-only file, and with REDIS_TLS=1
TLS only (`rediss://`, the server certificate from the same CA as the services')."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from shopctl.certs import write_private
from shopctl.local_redis.server import LocalRedis, RedisUnsuitable
from shoplib import config, security
from shoplib.security import acl
from shoplib.security.files import TlsFiles
from shoplib.security.identities import OPS, REDIS

MIN_REDIS_VERSION = (7, 0)  # ACL selectors (a consumer that may acknowledge a stream but not append to it)
PASSWORD_BYTES = 24  # of randomness per generated password (token_urlsafe: 32 characters)


def tls_wanted() -> bool:
    """REDIS_TLS=1: the private Redis of a secure stack listens with TLS only."""
    return config.optional("REDIS_TLS", False, config.flag)


class SecureRedis(LocalRedis):
    """A private redis-server whose `default` user is off: one user per service (shoplib.security.acl),
    with passwords generated into files only the owner can read (`<user>.password`, 0600)."""

    minimum_version = MIN_REDIS_VERSION

    def __init__(self, tls: bool = False) -> None:
        try:
            super().__init__(tls=tls)
        except RedisUnsuitable as exc:
            raise type(exc)(f"SECURE=1 (ACL selectors{', REDIS_TLS=1' if tls else ''}) {exc}") from None
        self.tls = TlsFiles.from_env(REDIS) if tls else None
        if self.tls is not None:
            self.tls.load()  # a missing file is named here, not in redis-server's own log
        self.secrets = self.data_dir / "secrets"
        self.secrets.mkdir(mode=0o700)
        passwords = {user: secrets.token_urlsafe(PASSWORD_BYTES) for user in acl.USERS}
        for user, password in passwords.items():
            write_private(self.password_file(user), password.encode())
        write_private(self.acl_path, acl.acl_file(passwords).encode())

    @property
    def acl_path(self) -> Path:
        return self.secrets / "users.acl"

    def password_file(self, user: str) -> Path:
        return self.secrets / f"{user}.password"

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/0" if self.tls else super().url

    def arguments(self, aof: bool = True) -> list[str]:
        arguments = [*super().arguments(aof), "--aclfile", str(self.acl_path)]
        if self.tls is None:
            return arguments
        arguments[arguments.index("--port") + 1] = "0"  # no plaintext port at all
        absolute = [str(path.resolve()) for path in (self.tls.cert, self.tls.key, self.tls.ca)]  # it runs in --dir
        return [*arguments, "--tls-port", str(self.port), "--tls-cert-file", absolute[0],
                "--tls-key-file", absolute[1], "--tls-ca-cert-file", absolute[2],
                "--tls-auth-clients", "no"]  # clients prove who they are by ACL user and password

    def credentials(self, user: str) -> dict[str, Any]:
        """What a client of `self.url` connecting as `user` needs: its name and password (and the CA under TLS)."""
        found: dict[str, Any] = {"username": user, "password": self.password_file(user).read_text()}
        return {**found, "ssl_ca_certs": str(self.tls.ca)} if self.tls else found

    def client_kwargs(self) -> dict[str, Any]:
        """For a client made by port (redis.Redis(port=...)), which must be told to speak TLS."""
        return {**self.credentials(acl.ADMIN), **({"ssl": True} if self.tls else {})}


def local_redis() -> LocalRedis:
    return SecureRedis(tls_wanted()) if security.enabled() else LocalRedis()


def service_env(name: str, redis: LocalRedis | None) -> dict[str, str]:
    """A service's Redis user and password file, when the stack runs its own secure Redis."""
    if not isinstance(redis, SecureRedis) or name not in acl.SERVICE_USERS:
        return {}
    found = {"REDIS_USERNAME": name, "REDIS_PASSWORD_FILE": str(redis.password_file(name))}
    return {**found, "REDIS_TLS_CA_FILE": str(redis.tls.ca)} if redis.tls else found


def tool_redis_kwargs(redis: LocalRedis | None) -> dict[str, Any]:
    """What the ops tools (stream views, checkers) connect to the stack's Redis as."""
    return redis.credentials(OPS) if isinstance(redis, SecureRedis) else {}


