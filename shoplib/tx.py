"""Atomic commits: a handler's writes, its output events and the stream ack, all or nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import redis.asyncio as aioredis

Value = str | bytes | int | float
_SCRIPT = (Path(__file__).with_name("commit.lua")).read_text()


@dataclass(frozen=True)
class Ack:
    """The stream entry a consumer is working on, acknowledged in the same commit."""

    stream: str
    group: str
    entry_id: str


@dataclass
class Writes:
    """Writes collected while a handler runs; nothing reaches Redis until commit."""

    ops: list[tuple[Value, ...]] = field(default_factory=list)

    def set(self, key: str, value: Value) -> None:
        self.ops.append(("SET", key, value))

    def rpush(self, key: str, value: Value) -> None:
        self.ops.append(("RPUSH", key, value))

    def zadd(self, key: str, score: float, member: str) -> None:
        self.ops.append(("ZADD", key, score, member))

    def zrem(self, key: str, member: str) -> None:
        self.ops.append(("ZREM", key, member))

    def xadd(self, stream: str, fields: dict[str, Value]) -> None:
        self.ops.append(("XADD", stream, "*", *[x for pair in fields.items() for x in pair]))

    def publish(self, channel: str, message: Value) -> None:
        self.ops.append(("PUBLISH", channel, message))


class Committer(Protocol):
    async def commit(self, writes: Writes, once: tuple[str, Value] | None = None,
                     ack: Ack | None = None) -> bool: ...


class RedisCommitter:
    """Runs the commit script; returns False when the once key showed the effect was done."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._script = client.register_script(_SCRIPT)

    async def commit(self, writes: Writes, once: tuple[str, Value] | None = None,
                     ack: Ack | None = None) -> bool:
        key, value = once or ("", "")
        target = (ack.stream, ack.group, ack.entry_id) if ack else ("", "", "")
        args: list[Value] = [value, *target]
        for op in writes.ops:
            args += [len(op), *op]
        return bool(await self._script(keys=[key], args=args))
