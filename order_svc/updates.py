"""Live order updates for WatchOrder: one Redis pub/sub subscription per process, fanned out to
the watchers of each order. Pub/sub is fire-and-forget, which suits a live view: a watcher
subscribes, then reads the current state, and re-reads after RESYNC_S without news.

On a Redis Cluster this stays classic pub/sub (PUBLISH from the commit script, SUBSCRIBE here),
not sharded pub/sub per partition: a classic message reaches every node over the cluster bus, so
one subscription on any node sees every order of every partition, and after a failover the
listener simply subscribes again on whichever node the client picks. Sharded pub/sub would need
P subscriptions per process spread over the masters, re-homed at each failover, and its
SPUBLISH inside the script a channel declared among the keys; it pays off only when the bus
traffic of a large cluster matters, which a few status changes per order never do here."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from google.protobuf.message import DecodeError
from shop.v1 import types_pb2

from order_svc.adapters import UPDATES_CHANNEL
from order_svc.ports import RESYNC_S
from shoplib import errors, log, outage
from shoplib.bounds import MAX_WATCHERS

_logger = log.get("order_svc")


# Updates kept per watcher: an order has few statuses; a watcher too slow to read keeps the latest.
WATCH_QUEUE = 8


class OrderUpdates:
    """One pub/sub subscription per process, fanned out to the watchers of each order.
    A message that is not one of ours is logged and skipped; the listener never dies of it."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._watchers: dict[str, set[asyncio.Queue[types_pb2.Order]]] = defaultdict(set)
        self._count = 0

    @contextlib.asynccontextmanager
    async def watch(self, order_id: str) -> AsyncIterator[asyncio.Queue[types_pb2.Order]]:
        if self._count >= MAX_WATCHERS:
            raise errors.ResourceExhausted(f"too many orders followed at once (at most {MAX_WATCHERS}); retry later")
        queue: asyncio.Queue[types_pb2.Order] = asyncio.Queue(maxsize=WATCH_QUEUE)
        self._watchers[order_id].add(queue)
        self._count += 1
        try:
            yield queue
        finally:
            self._count -= 1
            self._watchers[order_id].discard(queue)
            if not self._watchers[order_id]:
                del self._watchers[order_id]

    async def run(self) -> None:
        """Listen for ever; reconnects after Redis comes back (watchers resync meanwhile). Any
        other error ends the task, and its supervisor logs it and starts it again."""
        while True:
            try:
                await self._listen()
            except Exception as exc:
                if not outage.is_outage(exc):
                    raise
                _logger.warning("order.updates_disconnected", error=outage.describe(exc))
                await asyncio.sleep(RESYNC_S / 10)

    async def _listen(self) -> None:
        async with self._client.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(UPDATES_CHANNEL)
            async for message in pubsub.listen():
                self._deliver(message.get("data"))

    def _deliver(self, data: object) -> None:
        """Hand one update to the watchers of its order; anything else is logged and skipped."""
        if not isinstance(data, bytes):
            return
        raw_id, _, payload = data.partition(b" ")
        watchers = self._watchers.get(raw_id.decode(errors="replace"))
        if not watchers:  # most updates have no watcher: do not even parse them
            return
        try:
            order = types_pb2.Order.FromString(payload)
        except DecodeError:
            order = None
        if order is None or order.order_id != raw_id.decode(errors="replace"):  # not this order's update
            _logger.warning("order.update_malformed", channel=UPDATES_CHANNEL, bytes=len(data))
            return
        for queue in watchers:
            if queue.full():  # a watcher that does not read only needs the latest status
                queue.get_nowait()
            queue.put_nowait(order)
