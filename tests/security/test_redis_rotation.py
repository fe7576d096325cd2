"""Redis credentials renewed while a service runs (issue 19, case 4): a rotated ACL password, a
server certificate from a new CA and a renewed client certificate, on a private TLS redis-server 7.
The service's clients (redis-py's pool and the lean commit connection) use the new material from
their next connection; a control client holding what it read at start (redis-py as configured
before this fix) is refused."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
import trustme
from prometheus_client import REGISTRY
from redis.asyncio.connection import SSLConnection
from redis.exceptions import ConnectionError as RedisConnectionError

from shopctl.secure_redis import SecureRedis, service_env
from shoplib.security import redis_auth
from shoplib.security.identities import PAYMENT, REDIS
from shoplib.store import connections
from shoplib.store.lean import Endpoint, RedisPipe
from tests.security.certs import write_leaf

# The first client certificate's life: long enough to connect both clients before the renewal
# (measured with the cluster's, 1.3 s for far more connections), short enough to wait out; then
# past its notAfter by a margin (X.509 times are whole seconds).
OLD_CERT_LIFETIME_S = 10.0
EXPIRY_MARGIN_S = 1.5


@pytest.fixture
def admin(tls_redis: SecureRedis) -> Iterator[redis.Redis]:
    client = redis.Redis(port=tls_redis.port, **tls_redis.client_kwargs())
    yield client
    client.close()


@pytest.fixture
def own(tls_redis: SecureRedis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """The payment service's environment with its own copies of the password file and the CA
    (the ones this test rotates): (password file, CA file)."""
    password, ca = tmp_path / "payment.password", tmp_path / "redis-ca.pem"
    for name, value in service_env(PAYMENT, tls_redis).items():
        monkeypatch.setenv(name, value)
    shutil.copy(tls_redis.password_file(PAYMENT), password)
    shutil.copy(Path(service_env(PAYMENT, tls_redis)["REDIS_TLS_CA_FILE"]), ca)
    monkeypatch.setenv("REDIS_PASSWORD_FILE", str(password))
    monkeypatch.setenv("REDIS_TLS_CA_FILE", str(ca))
    return password, ca


def control(tls_redis: SecureRedis, password: str, ca: Path) -> aioredis.Redis:
    """A client as every one was before: the password read once, redis-py's SSL context kept."""
    return aioredis.Redis.from_url(tls_redis.url, username=PAYMENT, password=password, ssl_ca_certs=str(ca),
                                   socket_timeout=connections.SOCKET_TIMEOUT_S)


async def with_one_retry(pipe: RedisPipe) -> list[object]:
    """PING on the lean connection, retried once (its connection was killed: the first may fail)."""
    try:
        return await pipe.execute([("ACL", "WHOAMI")])
    except RedisConnectionError:
        return await pipe.execute([("ACL", "WHOAMI")])


async def ping_after_drop(client: aioredis.Redis) -> object:
    """PING on a client whose connection was killed: the first attempt may meet the dead one."""
    try:
        return await client.ping()
    except RedisConnectionError as exc:
        if isinstance(exc, redis.AuthenticationError):
            raise
        return await client.ping()


def drop_connections(admin: redis.Redis) -> None:
    """What a Redis restart or a network blip does: every payment connection must be made again."""
    admin.execute_command("CLIENT", "KILL", "USER", PAYMENT)


async def test_a_rotated_acl_password_is_used_by_the_next_connection(
        tls_redis: SecureRedis, admin: redis.Redis, own: tuple[Path, Path]) -> None:
    password, ca = own
    old, new = password.read_text(), secrets.token_urlsafe(24)
    client = connections.connect(tls_redis.url)
    pipe = RedisPipe(Endpoint.of(client))  # type: ignore[arg-type]
    before = control(tls_redis, old, ca)
    try:
        assert await client.acl_whoami() == PAYMENT and await with_one_retry(pipe) == [b"payment"]
        assert await before.ping()
        admin.execute_command("ACL", "SETUSER", PAYMENT, f">{new}")  # both passwords valid for the change
        password.write_text(new)
        admin.execute_command("ACL", "SETUSER", PAYMENT, f"<{old}")  # the old one removed after the file changed
        drop_connections(admin)
        assert await client.acl_whoami() == PAYMENT  # redis-py's own retry reconnects
        assert await with_one_retry(pipe) == [b"payment"]
        with pytest.raises(redis.AuthenticationError):
            await ping_after_drop(before)
    finally:
        admin.execute_command("ACL", "SETUSER", PAYMENT, f">{old}", f"<{new}")
        await pipe.close()
        await client.aclose()
        await before.aclose()


async def test_a_redis_certificate_from_a_new_ca_is_trusted_once_the_ca_file_is_renewed(
        tls_redis: SecureRedis, admin: redis.Redis, own: tuple[Path, Path], tmp_path: Path) -> None:
    _, ca = own
    client = connections.connect(tls_redis.url)
    assert client.connection_pool.connection_class is redis_auth.FreshTlsConnection
    pipe = RedisPipe(Endpoint.of(client))  # type: ignore[arg-type]
    before = control(tls_redis, tls_redis.password_file(PAYMENT).read_text(), ca)
    assert before.connection_pool.connection_class is SSLConnection
    assert tls_redis.tls is not None
    original = [str(path.resolve()) for path in (tls_redis.tls.cert, tls_redis.tls.key)]
    try:
        assert await client.ping() and await with_one_retry(pipe) == [b"payment"] and await before.ping()
        next_ca = trustme.CA()
        cert, key = write_leaf(tmp_path, "redis-next", next_ca, REDIS)
        ca.write_bytes(ca.read_bytes() + next_ca.cert_pem.bytes())  # clients trust both during the change
        admin.execute_command("CONFIG", "SET", "tls-cert-file", str(cert), "tls-key-file", str(key))
        drop_connections(admin)
        assert await client.ping()
        assert await with_one_retry(pipe) == [b"payment"]
        with pytest.raises(RedisConnectionError, match="certificate verify failed"):
            await ping_after_drop(before)
    finally:
        admin.execute_command("CONFIG", "SET", "tls-cert-file", original[0], "tls-key-file", original[1])
        await pipe.close()
        await client.aclose()
        await before.aclose()
    left = REGISTRY.get_sample_value("shop_credential_expiry_seconds", {"credential": redis_auth.REDIS_CA})
    assert left is not None and left > 0


def test_an_unreadable_password_file_at_start_names_the_setting(own: tuple[Path, Path]) -> None:
    password, _ = own
    password.unlink()
    with pytest.raises(SystemExit, match="REDIS_PASSWORD_FILE: cannot read"):
        redis_auth.connection_kwargs()


def test_the_password_is_in_no_repr(own: tuple[Path, Path], tls_redis: SecureRedis) -> None:
    password, _ = own
    client = connections.connect(tls_redis.url)
    endpoint = Endpoint.of(client)
    assert password.read_text() not in repr(endpoint) + repr(client.connection_pool.connection_kwargs)


async def test_a_renewed_client_certificate_is_shown_by_the_next_connection_after_the_old_one_expired(
        tls_redis: SecureRedis, own: tuple[Path, Path], tmp_path: Path, ca: trustme.CA,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis asks clients for a certificate of its CA (`tls-auth-clients yes`); REDIS_TLS_CERT_FILE
    is renewed in place and the old one expires: redis-py's pool and the lean commit connection
    show the new one at their next connection; a control client keeping its context is refused."""
    admin_cert, admin_key = write_leaf(tmp_path, "admin-redis", ca, "client")
    admin = redis.Redis(port=tls_redis.port, ssl_certfile=str(admin_cert), ssl_keyfile=str(admin_key),
                        **tls_redis.client_kwargs())
    cert, key = write_leaf(tmp_path, "payment-redis", ca, "client", lifetime_s=OLD_CERT_LIFETIME_S)
    issued = time.time()
    monkeypatch.setenv("REDIS_TLS_CERT_FILE", str(cert))
    monkeypatch.setenv("REDIS_TLS_KEY_FILE", str(key))
    admin.config_set("tls-auth-clients", "yes")
    client = connections.connect(tls_redis.url)
    endpoint = Endpoint.of(client)
    assert endpoint is not None and endpoint.tls_cert_file == str(cert)  # the lean connection is kept, with it
    pipe = RedisPipe(endpoint)
    before = aioredis.Redis.from_url(tls_redis.url, username=PAYMENT, password=own[0].read_text(),
                                     ssl_ca_certs=str(own[1]), ssl_certfile=str(cert), ssl_keyfile=str(key))
    try:
        assert await client.ping() and await with_one_retry(pipe) == [b"payment"] and await before.ping()
        assert time.time() - issued < OLD_CERT_LIFETIME_S
        write_leaf(tmp_path, "payment-redis", ca, "client")  # renewed in place, same CA
        await asyncio.sleep(max(0.0, issued + OLD_CERT_LIFETIME_S + EXPIRY_MARGIN_S - time.time()))
        drop_connections(admin)
        assert await client.acl_whoami() == PAYMENT  # redis-py's own retry reconnects
        assert await with_one_retry(pipe) == [b"payment"]
        with pytest.raises(RedisConnectionError, match=r"(?i)certificate expired"):
            await ping_after_drop(before)
    finally:
        admin.config_set("tls-auth-clients", "no")
        admin.close()
        await pipe.close()
        await client.aclose()
        await before.aclose()
    left = REGISTRY.get_sample_value("shop_credential_expiry_seconds", {"credential": redis_auth.REDIS_CLIENT_CERT})
    assert left is not None and left > OLD_CERT_LIFETIME_S


def test_a_client_certificate_without_its_key_names_the_missing_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_TLS_CERT_FILE", "/run/secrets/redis-client.pem")
    monkeypatch.delenv("REDIS_TLS_KEY_FILE", raising=False)
    with pytest.raises(SystemExit, match="REDIS_TLS_KEY_FILE must be set with the other"):
        redis_auth.connection_kwargs()
