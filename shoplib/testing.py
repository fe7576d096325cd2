"""In-memory twins of the Redis-backed ports and of the stream runtime, for unit tests only
(integration and end-to-end tests use a real Redis)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, ClassVar

from shoplib import catalogue
from shoplib.commit.writes import Ack, Value, Writes
from shoplib.store import partitions, shared_clock

if TYPE_CHECKING:
    from shoplib.streams.consumer import Subscription


def _b(value: Value) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


class MemoryStore:
    """Reads like the few Redis commands repositories use; commits like the commit script."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}
        self.lists: dict[str, list[bytes]] = defaultdict(list)
        self.zsets: dict[str, dict[str, float]] = defaultdict(dict)
        self.streams: dict[str, list[dict[str, bytes]]] = defaultdict(list)
        self.published: list[tuple[str, bytes]] = []
        self.acks: list[Ack] = []
        self.commits = 0
        self.now_ms = 1_700_000_000_000  # the store's clock (Redis TIME in the real one): tests move it

    async def get(self, key: str) -> bytes | None:
        return self.values.get(key)

    async def zrangebyscore(self, key: str, low: str, high: int, start: int, num: int) -> list[bytes]:
        members = sorted((score, m) for m, score in self.zsets.get(key, {}).items() if score <= high)
        return [m.encode() for _, m in members[start:start + num]]

    async def eval(self, script: str, numkeys: int, *keys_and_args: str) -> list[bytes]:
        """Only the read scripts the stores run: shoplib.store.shared_clock.DUE."""
        if script != shared_clock.DUE or numkeys != 1:
            raise ValueError("MemoryStore models only the shared_clock.DUE script")
        key, after_ms, limit = keys_and_args
        return await self.zrangebyscore(key, "-inf", self.now_ms - int(after_ms), 0, int(limit))

    async def lrange(self, key: str, start: int, end: int) -> list[bytes]:
        items = self.lists.get(key, [])
        return items[start:] if end == -1 else items[start:end + 1]

    async def commit(self, writes: Writes, once: tuple[str, Value] | None = None,
                     ack: Ack | None = None) -> bool:
        if ack is not None:
            self.acks.append(ack)
        if once is not None and once[0] in self.values:
            return False
        if once is not None:
            self.values[once[0]] = _b(once[1])
        for op in writes.ops:
            self._apply(op)
        self.commits += 1
        return True

    def _apply(self, op: tuple[Value, ...]) -> None:
        command, key, *args = op
        apply = self._APPLY.get(str(command))
        if apply is None:
            raise ValueError(f"MemoryStore does not model {command!s}")
        apply(self, str(key), args)

    def _zadd(self, key: str, args: list[Value]) -> None:
        xx = args[0] == "XX"
        score, member = args[1:] if xx else args
        if not xx or str(member) in self.zsets[key]:
            self.zsets[key][str(member)] = float(score)

    def _zadd_now(self, key: str, args: list[Value]) -> None:
        self._zadd(key, [*args[:-1], self.now_ms, args[-1]])

    def _xadd(self, key: str, args: list[Value]) -> None:
        pairs = args[args.index("*") + 1:]
        self.streams[key].append({str(k): _b(v) for k, v in zip(pairs[::2], pairs[1::2], strict=True)})

    def _zrem(self, key: str, args: list[Value]) -> None:
        self.zsets[key].pop(str(args[0]), None)

    def _incr(self, key: str, args: list[Value]) -> None:
        self.values[key] = str(int(self.values.get(key, b"0")) + 1).encode()

    _APPLY: ClassVar[dict[str, Callable[[MemoryStore, str, list[Value]], None]]] = {
        "SET": lambda self, key, args: self.values.__setitem__(key, _b(args[0])),
        "RPUSH": lambda self, key, args: self.lists[key].append(_b(args[0])),
        "ZADD": _zadd,
        "ZADDNOW": _zadd_now,
        "ZREM": _zrem,
        "XADD": _xadd,
        "INCR": _incr,
        "HDEL": lambda self, key, args: None,  # failure records are not modelled
        "PUBLISH": lambda self, key, args: self.published.append((key, _b(args[0]))),
    }


class MemoryBroker:
    """The stream runtime's twin (FastStream's TestBroker idea): each subscription gets every
    entry the MemoryStore's commits appended to its streams, in order, through the same handler
    table a StreamConsumer uses; entries no handler takes are acknowledged, as the runtime does.
    No Redis, no tasks: `drain()` delivers until nothing is left."""

    def __init__(self, store: MemoryStore, subscriptions: Sequence[Subscription]) -> None:
        self._store, self._subscriptions = store, subscriptions
        self._read: dict[tuple[str, str], int] = defaultdict(int)  # (group, stream) -> entries delivered

    async def drain(self, most: int = 10_000) -> int:
        """Deliver until every group has read every entry; returns how many were delivered."""
        delivered = 0
        while delivered < most and await self.step():
            delivered += 1
        return delivered

    async def step(self) -> str | None:
        """Deliver the next entry; the group it went to, or None when nothing is left."""
        due = self._next()
        if due is None:
            return None
        await self._deliver(*due)
        return due[0].group

    def _next(self) -> tuple[Subscription, str, int] | None:
        for subscription in self._subscriptions:
            for stream in (s for base in subscription.streams for s in partitions.streams(base)):
                index = self._read[(subscription.group, stream)]
                if index < len(self._store.streams.get(stream, [])):
                    self._read[(subscription.group, stream)] += 1
                    return subscription, stream, index
        return None

    async def _deliver(self, subscription: Subscription, stream: str, index: int) -> None:
        fields = {k.encode(): v for k, v in self._store.streams[stream][index].items()}
        envelope, payload = catalogue.decode(fields)
        ack = Ack(stream, subscription.group, f"{index + 1}-0")
        handler = subscription.handlers.get(type(payload))
        if handler is None:
            self._store.acks.append(ack)
        else:
            await handler(envelope, payload, ack)
