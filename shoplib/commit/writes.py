"""Atomic commits, as data: a handler's writes, its once key and the stream ack, committed all or
nothing by a Committer (shoplib.commit.committers runs them on Redis; shoplib.testing in memory)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from shoplib.rules.bounds import STREAM_MAX_BACKLOG

Value = str | bytes | int | float
# A once key and its value: written with NX; present means the effect was done before.
Once = tuple[str, Value]


@dataclass(frozen=True)
class Ack:
    """The stream entry a consumer is working on, acknowledged in the same commit."""

    stream: str
    group: str
    entry_id: str
    # Write only while the entry is still pending in the group (dead letters: once per group).
    only_if_pending: bool = False


@dataclass
class Writes:
    """Writes collected while a handler runs; nothing reaches Redis until commit."""

    ops: list[tuple[Value, ...]] = field(default_factory=list)

    def set(self, key: str, value: Value) -> None:
        self.ops.append(("SET", key, value))

    def rpush(self, key: str, value: Value) -> None:
        self.ops.append(("RPUSH", key, value))

    def zadd(self, key: str, score: float, member: str, only_existing: bool = False) -> None:
        """With `only_existing`, a member no longer there (removed meanwhile) is not added back."""
        self.ops.append(("ZADD", key, "XX", score, member) if only_existing else ("ZADD", key, score, member))

    def zadd_now(self, key: str, member: str, only_existing: bool = False) -> None:
        """A member scored by the Redis server's clock in ms at commit (shoplib.store.shared_clock): a score
        other processes compare with "now" is never taken from this process's wall clock."""
        self.ops.append(("ZADDNOW", key, "XX", member) if only_existing else ("ZADDNOW", key, member))

    def zrem(self, key: str, member: str) -> None:
        self.ops.append(("ZREM", key, member))

    def xadd(self, stream: str, fields: Mapping[str, Value], maxlen: int | None = None) -> None:
        """An entry; with `maxlen` the stream caps itself (oldest go) instead of pushing back."""
        cap: tuple[Value, ...] = ("MAXLEN", "~", maxlen) if maxlen else ()
        self.ops.append(("XADD", stream, *cap, "*", *[x for pair in fields.items() for x in pair]))

    def publish(self, channel: str, message: Value) -> None:
        self.ops.append(("PUBLISH", channel, message))

    def incr(self, key: str) -> None:
        self.ops.append(("INCR", key))

    def hdel(self, key: str, field: str) -> None:
        self.ops.append(("HDEL", key, field))

    def clear(self) -> None:
        self.ops.clear()


# Commands of the writes whose first argument is not a key (commit.lua passes it on as it is).
UNKEYED = frozenset({"PUBLISH"})


def script_arguments(writes: Writes, once: Once | None, ack: Ack | None) -> tuple[list[str], list[Value]]:
    """KEYS and ARGV of commit.lua for these writes: every key touched is declared in KEYS (the
    once key, the consumed stream, then the keys of the writes, each once), and each write names
    its key by its index in KEYS."""
    keys = [once[0]] if once else []
    keys += [ack.stream] if ack else []
    target = (ack.group, ack.entry_id) if ack else ("", "")
    args: list[Value] = ["1" if once else "", once[1] if once else "", "1" if ack else "", *target,
                         "1" if ack and ack.only_if_pending else "", STREAM_MAX_BACKLOG]
    index = {k: i + 1 for i, k in enumerate(keys)}
    for command, name, *rest in writes.ops:
        if command not in UNKEYED:
            name = index.setdefault(str(name), len(index) + 1)
        args += [len(rest) + 2, command, name, *rest]
    return list(index), args


class Committer(Protocol):
    async def commit(self, writes: Writes, once: Once | None = None,
                     ack: Ack | None = None) -> bool: ...


