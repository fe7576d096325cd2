"""One live process per consumer name: a second one with the same name is refused at start.

Two processes reading a group under one consumer name would share one pending list: each would
re-read (and handle) the other's in-flight entries as its own. So every consumer holds a lease,
`health:consumer:<consumer>:lease:<group>` = a token of this process, with an expiry it renews. A
process that finds the lease held waits one lease period (a SIGKILLed holder's lease runs out by
then) and is then refused with StartRefused, naming the consumer. A single key: on a cluster it
lives in one slot whatever its name.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid

import redis.asyncio as aioredis

from shoplib import log
from shoplib.process.service import ServiceSpec, StartRefused
from shoplib.store import outage
from shoplib.streams.subscription import Subscription

# A holder that stops renewing (killed) frees its name after this; a restart of it waits as long at most.
LEASE_MS = 2_000
RENEW_S = LEASE_MS / 4 / 1000  # four renewals per lease: a stalled loop or a slow Redis reply is absorbed
CLAIM_POLL_S = 0.1
# Renew if still ours, take it again if it lapsed (a stall, a Redis restart); 0 when another holds it.
_RENEW = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] or not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
_logger = log.get("shoplib.lease")


class ConsumerLease:
    """The lease on one subscription's consumer name: `claim` (a start check), `keep` (a
    background job renewing it), `release` (on stop, so a graceful restart is not delayed)."""

    def __init__(self, client: aioredis.Redis, subscription: Subscription) -> None:
        self.client, self.group, self.consumer = client, subscription.group, subscription.consumer
        # under the consumer's own health keys, which the service's least-privilege ACL user may write
        self.key = f"health:consumer:{self.consumer}:lease:{self.group}"
        self.token = uuid.uuid4().hex

    async def claim(self) -> None:
        """Take the lease, waiting one lease period for a dead holder's to run out; StartRefused
        when another live process keeps it."""
        deadline = time.monotonic() + LEASE_MS / 1000 + RENEW_S
        while not await self.client.set(self.key, self.token, nx=True, px=LEASE_MS):
            if time.monotonic() > deadline:
                raise StartRefused(f"consumer name {self.consumer!r} of group {self.group!r} is in use by another "
                                   f"live process ({self.key}); give this instance its own SERVICE_INSTANCE")
            await asyncio.sleep(CLAIM_POLL_S)
        _logger.info("consumer.lease_claimed", group=self.group, consumer=self.consumer)

    async def keep(self) -> None:
        """Renew until cancelled; Redis being away is waited out (the lease is taken again after)."""
        while True:
            await asyncio.sleep(RENEW_S)
            try:
                held = await self.client.eval(_RENEW, 1, self.key, self.token, str(LEASE_MS))
            except Exception as exc:  # a cancelled call may surface as a connection error: stop then
                task = asyncio.current_task()
                if not outage.is_outage(exc) or (task is not None and task.cancelling()):
                    raise
                continue
            if not held:
                _logger.error("consumer.lease_taken", group=self.group, consumer=self.consumer,
                              consequence="another live process uses this consumer name")

    async def release(self) -> None:
        try:
            await self.client.eval(_RELEASE, 1, self.key, self.token)
        except Exception as exc:  # stopping anyway: an unreleased lease only delays a restart
            _logger.warning("consumer.lease_not_released", error=outage.describe(exc))


def one_live(spec: ServiceSpec, client: aioredis.Redis, subscription: Subscription) -> ServiceSpec:
    """`spec` with its consumer's lease claimed at start, renewed while it runs, released on stop
    (before the hooks that close `client`)."""
    lease = ConsumerLease(client, subscription)
    return dataclasses.replace(spec, start_checks=[*spec.start_checks, lease.claim],
                               background=[*spec.background, lease.keep], on_stop=[lease.release, *spec.on_stop])
