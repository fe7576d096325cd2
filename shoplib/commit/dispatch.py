"""One table of event handlers per service, serving both modes.

A handler is `async (event, uow) -> R`, registered under its event's type; dispatch looks it up
by type, never by if/elif. The stream consumer calls it for each entry (with a unit of work that
acknowledges the entry in its commit), and a sync chain calls the same handler with the same
event built from a gRPC reply: one decision, two transports.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Generic, Protocol, TypeVar

from google.protobuf.message import Message
from shop.v1 import events_pb2

from shoplib.commit.writes import Ack


class Finishing(Protocol):
    async def finish(self) -> None: ...


U = TypeVar("U", bound=Finishing)
R = TypeVar("R")
# A handler takes the event of the type it is registered under, so its parameter is that type:
# the table's values take Any (a Callable over Message would refuse the narrower parameter).
EventHandler = Callable[[Any, U], Awaitable[R]]
StreamHandler = Callable[[events_pb2.EventEnvelope, Any, Ack], Awaitable[None]]


class Dispatcher(Generic[U, R]):
    def __init__(self, table: Mapping[type[Message], EventHandler[U, R]],
                 unit_of_work: Callable[[Ack | None], U]) -> None:
        self._table, self._unit_of_work = table, unit_of_work

    def unit_of_work(self, ack: Ack | None = None) -> U:
        return self._unit_of_work(ack)

    async def handle(self, event: Message, uow: U) -> R:
        """Run the handler of this event's type, then acknowledge (if consuming) what it left."""
        result = await self._table[type(event)](event, uow)
        await uow.finish()
        return result

    def stream_handlers(self) -> dict[type[Message], StreamHandler]:
        """The same table as the stream consumer takes it: one unit of work per entry. Each type's
        handler is bound in its own entry function (as `handle`, less a look-up and a call per entry)."""
        return {kind: self._on_entry(handler) for kind, handler in self._table.items()}

    def _on_entry(self, handler: EventHandler[U, R]) -> StreamHandler:
        async def on_entry(envelope: events_pb2.EventEnvelope, event: Any, ack: Ack) -> None:
            uow = self._unit_of_work(ack)
            await handler(event, uow)
            await uow.finish()

        return on_entry
