"""A consumer name is held by one live process: a second one with the same name is refused at start."""

from __future__ import annotations

import asyncio
import time
import uuid

import redis

import notification_svc.bootstrap
import notification_svc.config
from shoplib.process.service import Running, StartRefused
from shoplib.streams import lease

# The duplicate waits one lease period for the holder's lease to run out before it gives up.
REFUSED_WITHIN_S = lease.LEASE_MS / 1000 + 3.0
STOP_GRACE_S = 0.5


async def start(redis_url: str, instance: str) -> Running:
    running = Running(await notification_svc.bootstrap.build(notification_svc.config.Settings(
        port=0, redis_url=redis_url, instance=instance)))
    await running.start()
    return running


async def test_a_second_live_process_with_the_same_consumer_name_is_refused_naming_it(redis_url: str) -> None:
    instance = f"lease{uuid.uuid4().hex[:6]}"
    first = await start(redis_url, instance)
    try:
        await asyncio.sleep(0.5)  # the first holds the lease (its start check ran)
        second = await start(redis_url, instance)
        try:
            refused = await asyncio.wait_for(second.refused, REFUSED_WITHIN_S)
            assert isinstance(refused, StartRefused) and f"notification-{instance}" in str(refused)
            assert not first.refused.done()
        finally:
            await second.stop(grace=STOP_GRACE_S)
    finally:
        await first.stop(grace=STOP_GRACE_S)


async def test_after_a_graceful_stop_the_name_is_free_at_once(redis_url: str, redis_client: redis.Redis) -> None:
    instance = f"lease{uuid.uuid4().hex[:6]}"
    key = f"health:consumer:notification-{instance}:lease:notification-service-group"
    first = await start(redis_url, instance)
    await asyncio.sleep(0.5)
    first_token = redis_client.get(key)
    await first.stop(grace=STOP_GRACE_S)
    assert first_token is not None and redis_client.get(key) is None  # released, not left to expire
    second = await start(redis_url, instance)
    try:
        deadline = time.monotonic() + lease.LEASE_MS / 1000 / 2  # well before a lease could have run out
        while redis_client.get(key) is None and time.monotonic() < deadline:
            await asyncio.sleep(lease.CLAIM_POLL_S)
        assert redis_client.get(key) not in (None, first_token) and not second.refused.done()
    finally:
        await second.stop(grace=STOP_GRACE_S)
