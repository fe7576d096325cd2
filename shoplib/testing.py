"""In-memory twins of the Redis-backed ports, for unit tests only (integration uses real Redis)."""

from __future__ import annotations

from collections import defaultdict

from shoplib.tx import Ack, Value, Writes


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

    async def get(self, key: str) -> bytes | None:
        return self.values.get(key)

    async def zrangebyscore(self, key: str, low: str, high: int, start: int, num: int) -> list[bytes]:
        members = sorted((score, m) for m, score in self.zsets.get(key, {}).items() if score <= high)
        return [m.encode() for _, m in members[start:start + num]]

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
        key = str(key)
        if command == "SET":
            self.values[key] = _b(args[0])
        elif command == "RPUSH":
            self.lists[key].append(_b(args[0]))
        elif command == "ZADD":
            self.zsets[key][str(args[1])] = float(args[0])
        elif command == "ZREM":
            self.zsets[key].pop(str(args[0]), None)
        elif command == "XADD":
            pairs = args[args.index("*") + 1:]
            self.streams[key].append({str(k): _b(v) for k, v in zip(pairs[::2], pairs[1::2], strict=True)})
        elif command == "INCR":
            self.values[key] = str(int(self.values.get(key, b"0")) + 1).encode()
        elif command == "HDEL":
            pass  # failure records are not modelled
        elif command == "PUBLISH":
            self.published.append((key, _b(args[0])))
        else:
            raise ValueError(f"MemoryStore does not model {command!s}")
