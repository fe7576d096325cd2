"""What the order handlers depend on: small interfaces, with the Redis and gRPC adapters behind
them (order_svc.adapters) and in-memory twins in the unit tests. Loads neither grpc nor redis."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from google.protobuf.message import Message
from shop.v1 import types_pb2

from shoplib.commit.writes import Once

# A watcher re-reads the order after this long without news, in case a pub/sub message was
# lost (pub/sub is fire-and-forget); status changes themselves arrive by push.
RESYNC_S = 5.0
# Follow one order's status changes: a queue that gets each stored status of that order.
Watch = Callable[[str], AbstractAsyncContextManager[asyncio.Queue[types_pb2.Order]]]
# Every field violation of an order request (field path, description); empty when valid.
# (The mode's ValueType exists only in the .pyi stubs, hence the quotes.)
Validate = Callable[[str, str, list[types_pb2.OrderLine], "types_pb2.FlowMode.ValueType"], list[tuple[str, str]]]


class Orders(Protocol):
    """The orders, their idempotency reservations and the orders not settled yet."""

    async def get(self, order_id: str) -> types_pb2.Order | None: ...
    def remember(self, order: types_pb2.Order) -> None:
        """The caller has the order as stored: the next `get` of it need not read it again."""
    async def reserved(self, idempotency_key: str) -> tuple[str, str] | None:
        """(fingerprint, order id) of the order placed with this key, if any."""
    def add(self, order: types_pb2.Order) -> None: ...
    def redriven(self, order_id: str) -> None:
        """Stage a re-drive: not due again for another period, counted on the store's clock."""
    def settled(self, order: types_pb2.Order) -> None:
        """Stage the removal of a settled order from the orders not settled yet."""
    async def pending(self, mode: types_pb2.FlowMode.ValueType, after_ms: int, limit: int) -> list[str]:
        """Up to `limit` order ids per partition listed (placed or last re-driven) `after_ms` or more
        ago, measured on the store's one clock, never this process's wall clock."""
    def reservation(self, idempotency_key: str, fingerprint: str, order_id: str) -> Once:
        """The once key of placing an order: one order per idempotency key, ever."""
    def settlement(self, order_id: str) -> Once:
        """The once key of settling an order: one outcome per order, ever."""


class UnitOfWork(Protocol):
    @property
    def orders(self) -> Orders: ...
    def emit(self, event: Message) -> None: ...
    async def commit(self, once: Once | None = None) -> bool: ...
    async def publish(self) -> types_pb2.Order | None: ...
    async def resend(self, *emitted: Message) -> types_pb2.Order | None: ...
    async def republish(self, *emitted: Message) -> types_pb2.Order | None: ...
    async def finish(self) -> None: ...
