"""What a consumer is subscribed with: its group, name, handler table and streams."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message
from shop.v1 import events_pb2

from shoplib.commit.writes import Ack
from shoplib.streams import topology

# A handler takes the payload of the type it is registered under (the table's key), so its
# parameter is that type, which a Callable over Message would refuse: the payload is Any here.
Handler = Callable[[events_pb2.EventEnvelope, Any, Ack], Awaitable[None]]
Entry = tuple[str, str, dict[bytes, bytes]]  # stream, entry id, fields


@dataclass
class Subscription:
    group: str
    consumer: str
    handlers: Mapping[type[Message], Handler]  # by payload type; other types are acknowledged and skipped
    streams: Sequence[str]

    def __post_init__(self) -> None:
        topology.check_subscription(self.group, self.streams)
