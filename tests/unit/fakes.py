"""A Publisher twin that records what a unit of work handed it, for assertions; an order unit of
work over the in-memory store, built by the bootstrap."""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.message import Message

from order_svc import bootstrap as order_bootstrap
from order_svc.adapters import OrderUnitOfWork
from shoplib.commit.unit_of_work import StreamPublisher
from shoplib.commit.writes import Writes
from shoplib.testing import MemoryStore


class RecordingPublisher:
    def __init__(self) -> None:
        self.staged: list[Message] = []
        self.published: list[Message] = []
        self.resent: list[Message] = []

    def stage(self, emitted: Sequence[Message], writes: Writes) -> None:
        self.staged += emitted

    async def after_commit(self, emitted: Sequence[Message]) -> None:
        self.published += emitted

    async def resend(self, emitted: Sequence[Message]) -> None:
        self.resent += emitted


def order_unit_of_work(store: MemoryStore, source: str | None = "/t") -> OrderUnitOfWork:
    """An order unit of work over the in-memory store, through the bootstrap's door: events mode
    (its OrderPlaced staged on the stream of `source`), or with `source=None` nothing published."""
    publisher = StreamPublisher(source) if source is not None else None
    return order_bootstrap.unit_of_work(reader=store, committer=store, publisher=publisher)
