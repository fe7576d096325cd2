"""Live order updates for WatchOrder: one Redis pub/sub subscription per process, fanned out to
the watchers of each order. Pub/sub is fire-and-forget, which suits a live view: a watcher
subscribes, then reads the current state, and re-reads after RESYNC_S without news.

On a Redis Cluster this stays classic pub/sub (PUBLISH from the commit script, SUBSCRIBE here),
not sharded pub/sub per partition: a classic message reaches every node over the cluster bus, so
one subscription on any node sees every order of every partition, and after a failover the
listener simply subscribes again on whichever node the client picks. Sharded pub/sub would need
P subscriptions per process spread over the masters, re-homed at each failover, and its
SPUBLISH inside the script a channel declared among the keys; it pays off only when the bus
traffic of a large cluster matters, which a few status changes per order never do here.

The process is subscribed only while someone watches (and IDLE_UNSUBSCRIBE_S after the last one
left): otherwise every order's status changes would be read and dropped here for nobody. A new
watcher waits for the subscription to be confirmed before it reads the order, so no change
between the two is missed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from google.protobuf.message import DecodeError
from shop.v1 import types_pb2

from order_svc.adapters import UPDATES_CHANNEL
from order_svc.ports import RESYNC_S
from shoplib import errors, log
from shoplib.rules.bounds import MAX_WATCHERS
from shoplib.store import connections, outage

_logger = log.get("order_svc")


# Updates kept per watcher: an order has few statuses; a watcher too slow to read keeps the latest.
WATCH_QUEUE = 8
# The subscription is dropped this long after the last watcher left: watchers coming one after
# another (a client following its orders in turn) keep one subscription.
IDLE_UNSUBSCRIBE_S = RESYNC_S
# How often a quiet subscription looks whether anyone still watches.
POLL_S = 1.0
# A new watcher waits this long at most for the subscription before it reads the order; past it
# (Redis down or slow) it reads anyway and its resync every RESYNC_S stands in for a lost push.
SUBSCRIBE_WAIT_S = 1.0


class OrderUpdates:
    """One pub/sub subscription per process, fanned out to the watchers of each order.
    A message that is not one of ours is logged and skipped; the listener never dies of it."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._watchers: dict[str, set[asyncio.Queue[types_pb2.Order]]] = defaultdict(set)
        self._count = 0
        self._wanted = asyncio.Event()  # set while anyone watches
        self._subscribed = asyncio.Event()  # set while the subscription is confirmed

    @contextlib.asynccontextmanager
    async def watch(self, order_id: str) -> AsyncIterator[asyncio.Queue[types_pb2.Order]]:
        if self._count >= MAX_WATCHERS:
            raise errors.ResourceExhausted(f"too many orders followed at once (at most {MAX_WATCHERS}); retry later")
        queue: asyncio.Queue[types_pb2.Order] = asyncio.Queue(maxsize=WATCH_QUEUE)
        self._watchers[order_id].add(queue)
        self._count += 1
        self._wanted.set()
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._subscribed.wait(), SUBSCRIBE_WAIT_S)
            yield queue
        finally:
            self._count -= 1
            self._watchers[order_id].discard(queue)
            if not self._watchers[order_id]:
                del self._watchers[order_id]
            if not self._count:
                self._wanted.clear()

    async def run(self) -> None:
        """Listen whenever anyone watches; reconnects after Redis comes back (watchers resync
        meanwhile). Any other error ends the task, and its supervisor logs it and starts it again."""
        while True:
            connections.stop_if_cancelled()  # a stop that redis-py swallowed inside the subscription
            await self._wanted.wait()
            try:
                await self._listen()
            except Exception as exc:
                if not outage.is_outage(exc):
                    raise
                _logger.warning("order.updates_disconnected", error=outage.describe(exc))
                await asyncio.sleep(RESYNC_S / 10)

    async def _listen(self) -> None:
        """Subscribed until IDLE_UNSUBSCRIBE_S after the last watcher left."""
        async with self._client.pubsub() as pubsub:
            await pubsub.subscribe(UPDATES_CHANNEL)
            try:
                watched = time.monotonic()
                while self._count or time.monotonic() - watched < IDLE_UNSUBSCRIBE_S:
                    watched = time.monotonic() if self._count else watched
                    self._handle(await pubsub.get_message(timeout=POLL_S))
                    # redis-py may swallow a cancellation that lands during the read: without
                    # this a stopping service would poll on, then wait for a watcher for ever.
                    connections.stop_if_cancelled()
            finally:  # before the subscription closes: a watcher coming now waits for the next one
                self._subscribed.clear()

    def _handle(self, message: dict[str, object] | None) -> None:
        """The subscription's confirmation (from then on no update is missed), or an update."""
        if message is None:
            return
        if message.get("type") == "subscribe":
            self._subscribed.set()
        elif message.get("type") == "message":
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
