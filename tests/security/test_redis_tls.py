"""REDIS_TLS=1: the secure stack's private Redis listens with TLS only (`rediss://`), its
certificate issued by the services' CA; a service client with its ACL user and the CA connects,
a plaintext client does not get an answer."""

from __future__ import annotations

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from shopctl.secure_redis import SecureRedis, service_env
from shoplib.security.identities import PAYMENT
from shoplib.store import connections
from shoplib.store.lean import Endpoint, RedisPipe


async def test_a_service_connects_over_tls_with_its_user_and_the_ca(tls_redis: SecureRedis,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    assert tls_redis.url.startswith("rediss://")
    for name, value in service_env(PAYMENT, tls_redis).items():
        monkeypatch.setenv(name, value)
    client = connections.connect(tls_redis.url)
    try:
        assert await client.set("payment:{p1}:tls-check", "1")
        assert (await client.acl_whoami()) == "payment"
    finally:
        await client.aclose()


async def test_the_lean_commit_connection_uses_the_same_tls_user_and_ca(tls_redis: SecureRedis,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in service_env(PAYMENT, tls_redis).items():
        monkeypatch.setenv(name, value)
    client = connections.connect(tls_redis.url)
    endpoint = Endpoint.of(client)
    await client.aclose()
    assert endpoint is not None and endpoint.tls and endpoint.login()[0] == "payment"
    pipe = RedisPipe(endpoint)
    try:
        assert await pipe.execute([("ACL", "WHOAMI"), ("SET", "payment:{p1}:lean-tls", "1")]) == [b"payment", b"OK"]
    finally:
        await pipe.close()


def test_a_plaintext_client_gets_no_answer(tls_redis: SecureRedis) -> None:
    with pytest.raises(redis.ConnectionError):
        redis.Redis(port=tls_redis.port, socket_timeout=1.0, retry=Retry(NoBackoff(), 0), **{
            k: v for k, v in tls_redis.credentials(PAYMENT).items() if not k.startswith("ssl")}).ping()
