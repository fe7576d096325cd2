"""Least-privilege Redis (SECURE=1): a private redis-server with the generated ACL file. The
payment user is attacked directly; each service's own needs pass Redis's own ACL DRYRUN; a user
missing one permission stops its service at start naming it; no password is stored in clear."""

from __future__ import annotations

import stat
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio as aioredis
from redis.exceptions import NoPermissionError

from shopctl.secure import SecureRedis
from shoplib.commit import replicated
from shoplib.commit.committers import PipelinedCommitter
from shoplib.commit.writes import Writes
from shoplib.process.service import StartRefused
from shoplib.security import acl, redis_check
from shoplib.security.identities import PAYMENT
from shoplib.store import connections
from tests.support import new_id

# A script as the commit script calls it: every key declared; appends to the stream it names.
APPEND = "return redis.call('XADD', KEYS[2], '*', 'f', 'v')"


@pytest.fixture(scope="module")
def server() -> Iterator[SecureRedis]:
    secured = SecureRedis().start()
    try:
        yield secured
    finally:
        secured.close()


def client_as(server: SecureRedis, user: str) -> redis.Redis:
    return redis.Redis(port=server.port, **server.credentials(user))


@pytest.fixture(scope="module")
def payment(server: SecureRedis) -> Iterator[redis.Redis]:
    client = client_as(server, PAYMENT)
    yield client
    client.close()


@pytest.mark.parametrize("command", [
    ("XADD", "order-events", "*", "f", "v"),  # today's stream name
    ("XADD", "order-events:{p3}", "*", "f", "v"),  # the partitioned one
    ("SET", "order:{p3}:ord_p3_x", "forged"),
    ("SET", "order:ord_x", "forged"),
    ("XDEL", "order-events:{p3}", "1-0"),
    ("FLUSHALL",),
    ("CONFIG", "GET", "appendonly"),
    ("INFO",),  # only the sections its settings checks read (memory, persistence)
    ("INFO", "clients"),
    ("CONFIG", "SET", "appendonly", "no"),
    ("KEYS", "*"),
    ("PUBLISH", "order:updates", "forged"),
    ("ACL", "SETUSER", "payment", "+@all"),
])
def test_the_payment_user_is_refused_nopermission(payment: redis.Redis, command: tuple[str, ...]) -> None:
    with pytest.raises(NoPermissionError):  # redis-py raises it for replies starting NOPERM, and only for them
        payment.execute_command(*command)


# Redis 7.0: "NOPERM ... can't access at least one of the keys ..."; Redis 8.2: "ACL failure in
# script: No permissions to access a key ...".
SCRIPT_KEY_REFUSED = r"can't access at least one of the keys|ACL failure in script: No permissions to access a key"


def test_a_script_cannot_append_to_the_consumed_stream_for_the_payment_user(payment: redis.Redis) -> None:
    """EVAL may name the consumed stream (the commit script acknowledges it), but the XADD inside
    is checked again, against the user's rules: refused (Redis 7 and 8 word it differently)."""
    with pytest.raises(redis.ResponseError, match=SCRIPT_KEY_REFUSED):
        payment.eval(APPEND, 2, "payment:{p3}:once", "order-events:{p3}")
    assert payment.eval(APPEND, 2, "payment:{p3}:once", "payment-events:{p3}")  # its own stream: fine


def test_the_payment_user_consumes_and_acknowledges_order_events(server: SecureRedis, payment: redis.Redis) -> None:
    admin = client_as(server, acl.ADMIN)
    entry = admin.xadd("order-events:{p5}", {"f": "v"})
    payment.xgroup_create("order-events:{p5}", "acl-test-group", id="0")
    assert payment.xreadgroup("acl-test-group", "payment-1", {"order-events:{p5}": ">"})
    assert payment.xack("order-events:{p5}", "acl-test-group", entry) == 1


@pytest.mark.parametrize("service", acl.SERVICE_USERS)
def test_each_service_user_holds_every_permission_its_service_checks_at_start(
        server: SecureRedis, service: str) -> None:
    admin = client_as(server, acl.ADMIN)
    verdicts = {command: admin.execute_command("ACL", "DRYRUN", service, *command) for command in acl.needs(service)}
    assert {command: v for command, v in verdicts.items() if v != b"OK"} == {}


async def test_a_service_whose_user_lacks_a_permission_refuses_to_start_naming_it(
        server: SecureRedis, monkeypatch: pytest.MonkeyPatch) -> None:
    admin = client_as(server, acl.ADMIN)
    admin.execute_command("ACL", "SETUSER", "payment-crippled", "on", ">pw", *acl.rules(PAYMENT).replace(
        "+xack ", "").split())
    monkeypatch.setenv("REDIS_USERNAME", "payment-crippled")
    monkeypatch.setenv("REDIS_PASSWORD_FILE", str(server.password_file(acl.ADMIN)))  # the check runs as admin
    client = connections.connect(f"redis://admin@127.0.0.1:{server.port}/0")
    try:
        with pytest.raises(StartRefused, match=r"'payment-crippled' lacks a permission this service needs: XACK"):
            await redis_check.check_permissions(client, PAYMENT)
    finally:
        await client.aclose()


def test_passwords_live_only_in_owner_only_files(server: SecureRedis) -> None:
    files = [server.acl_path, *(server.password_file(user) for user in acl.USERS)]
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in files)
    rules = server.acl_path.read_text()
    assert not any(server.password_file(user).read_text() in rules for user in acl.USERS)


def test_the_default_user_is_off(server: SecureRedis) -> None:
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=server.port).ping()


@pytest.mark.parametrize("service", acl.SERVICE_USERS)
def test_each_service_user_may_write_its_own_replica_markers_and_wait_but_no_other_services(
        server: SecureRedis, service: str) -> None:
    """REDIS_WAIT_REPLICAS under SECURE=1: the marker a commit is followed by names its user."""
    admin = client_as(server, acl.ADMIN)
    key = f"{service}:{{p3}}:x"
    assert admin.execute_command("ACL", "DRYRUN", service, "SET", replicated.marker(key, service), "1") == b"OK"
    assert admin.execute_command("ACL", "DRYRUN", service, "WAIT", "1", "1000") == b"OK"
    other = next(user for user in acl.SERVICE_USERS if user != service)
    assert admin.execute_command("ACL", "DRYRUN", service, "SET", replicated.marker(key, other), "1") != b"OK"


async def test_a_replicated_commit_goes_through_as_the_order_user(server: SecureRedis,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The committer the services build with REDIS_WAIT_REPLICAS set, as the order user on the
    secure profile's Redis (no replica here: WAIT 0, so the permissions are what is tried)."""
    monkeypatch.setenv("REDIS_USERNAME", acl.ORDER)
    client = aioredis.Redis(port=server.port, **server.credentials(acl.ORDER))
    try:
        committer = replicated.ReplicatedCommitter(PipelinedCommitter(client), client, 0, acl.ORDER)
        writes = Writes()
        writes.set(f"order:{{p3}}:{new_id('ord')}", "1")
        assert await committer.commit(writes)
        assert await client.exists(replicated.marker("order:{p3}:x", acl.ORDER)) == 1
    finally:
        await client.aclose()
