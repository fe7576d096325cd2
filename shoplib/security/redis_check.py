"""The start-time self check of a service's Redis user: each service asks Redis (ACL DRYRUN)
whether its user may run what the service needs (shoplib.security.acl.needs), and refuses to
start naming the first permission it lacks. No user configured (the plaintext profile): no check.
ACL DRYRUN is itself an admin command: a Redis that refuses it to the user (`-@dangerous`, managed
Redis) gets the check skipped, said once; a missing permission then shows as NOPERM on the first
command that needs it. On a Redis Cluster ACLs are per node: each master is asked (a command
without keys cannot be routed by slot), and a master that lacks a permission refuses the start."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from shoplib import log
from shoplib.process.service import StartRefused
from shoplib.security import acl
from shoplib.security.redis_auth import username
from shoplib.store.settings_checks import refusal

_logger = log.get("shoplib.security.redis")


async def check_permissions(client: aioredis.Redis, service: str) -> None:
    """A start check: StartRefused naming the first command (and key) the user may not run."""
    user = username()
    if not user:
        return
    for command in acl.needs(service):
        try:
            verdicts = await _dry_run(client, user, command)
        except ResponseError as exc:
            if (why := refusal(exc)) is None:
                raise
            _logger.warning("redis.setting_unchecked", setting="ACL permissions", command="ACL DRYRUN", user=user,
                            reason=why, at_stake="a missing permission shows as NOPERM at first use, not at start")
            return
        for verdict in (v.decode() if isinstance(v, bytes) else str(v) for v in verdicts):
            if verdict != "OK":
                shown = " ".join(command[:2])
                raise StartRefused(f"Redis user {user!r} lacks a permission this service needs: {shown} ({verdict})")
    _logger.info("security.redis_permissions_checked", user=user, checks=len(acl.needs(service)))


async def _dry_run(client: aioredis.Redis, user: str, command: tuple[str, ...]) -> list[object]:
    """Redis's verdicts on `user` running `command`: one Redis's, or each master's of a cluster."""
    if not isinstance(client, RedisCluster):
        return [await client.execute_command("ACL", "DRYRUN", user, *command)]  # type: ignore[no-untyped-call]
    await client.initialize()  # the masters are known once the slot map is read
    return [await client.execute_command("ACL", "DRYRUN", user, *command, target_nodes=node)
            for node in client.get_primaries()]


def start_check(client: aioredis.Redis, service: str) -> Callable[[], Awaitable[None]]:
    """`check_permissions` for a ServiceSpec's start_checks."""
    return functools.partial(check_permissions, client, service)
