"""What the payment handlers depend on: small interfaces, with the Redis and gRPC adapters behind
them (payment_svc.adapters) and in-memory twins in the unit tests. Loads neither grpc nor redis."""

from __future__ import annotations

from typing import Protocol

from google.protobuf.message import Message
from shop.v1 import types_pb2

from shoplib.commit.writes import Once


class Payments(Protocol):
    async def get(self, order_id: str) -> types_pb2.Payment | None: ...
    def add(self, payment: types_pb2.Payment) -> None:
        """Stage the charge's ledger entry (the payment itself is the once key's value)."""
    def charge_once(self, payment: types_pb2.Payment) -> Once:
        """The once key of charging an order: one payment per order, ever."""


class UnitOfWork(Protocol):
    @property
    def payments(self) -> Payments: ...
    def emit(self, event: Message) -> None: ...
    async def commit(self, once: Once | None = None) -> bool: ...
    async def publish(self) -> None: ...
    async def republish(self, *emitted: Message) -> None: ...
    async def finish(self) -> None: ...
