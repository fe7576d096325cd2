"""The start-time self check of a service's Redis user: each service asks Redis (ACL DRYRUN)
whether its user may run what the service needs (shoplib.security.acl.needs), and refuses to
start naming the first permission it lacks. No user configured (the plaintext profile): no check.
ACL DRYRUN is itself an admin command: a Redis that refuses it to the user (`-@dangerous`, managed
Redis) gets the check skipped, said once; a missing permission then shows as NOPERM on the first
command that needs it."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from shoplib import log
from shoplib.admin_checks import refusal
from shoplib.grpc_server import StartRefused
from shoplib.security import acl
from shoplib.security.redis_auth import username

_logger = log.get("shoplib.security.redis")


async def check_permissions(client: aioredis.Redis, service: str) -> None:
    """A start check: StartRefused naming the first command (and key) the user may not run."""
    user = username()
    if not user:
        return
    for command in acl.needs(service):
        try:
            verdict = await client.execute_command("ACL", "DRYRUN", user, *command)  # type: ignore[no-untyped-call]
        except ResponseError as exc:
            if (why := refusal(exc)) is None:
                raise
            _logger.warning("redis.setting_unchecked", setting="ACL permissions", command="ACL DRYRUN", user=user,
                            reason=why, at_stake="a missing permission shows as NOPERM at first use, not at start")
            return
        verdict = verdict.decode() if isinstance(verdict, bytes) else str(verdict)
        if verdict != "OK":
            shown = " ".join(command[:2])
            raise StartRefused(f"Redis user {user!r} lacks a permission this service needs: {shown} ({verdict})")
    _logger.info("security.redis_permissions_checked", user=user, checks=len(acl.needs(service)))


def start_check(client: aioredis.Redis, service: str) -> Callable[[], Awaitable[None]]:
    """`check_permissions` for a ServiceSpec's start_checks."""
    return functools.partial(check_permissions, client, service)
