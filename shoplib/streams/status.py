"""The operations view: streams, groups, consumers, lag, oldest pending, dead letters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from shoplib.store import partitions, shared_clock
from shoplib.store.connections import as_entries
from shoplib.streams import topology
from shoplib.streams.settings import DEAD_LETTERS

STREAMS = topology.STREAMS  # by base name; every partition's is shown


def _s(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class GroupView:
    name: str
    consumers: list[tuple[str, int, int]]  # name, pending, idle ms
    pending: int
    lag: int | None
    oldest_pending_ms: int | None


@dataclass
class StreamView:
    name: str
    length: int
    last_id: str
    groups: list[GroupView] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # declared in the topology, absent in Redis


async def _group(client: aioredis.Redis, stream: str, info: dict[str, Any]) -> GroupView:
    name = _s(info["name"])
    consumers = [(_s(c["name"]), int(c["pending"]), int(c["idle"]))
                 for c in await client.xinfo_consumers(stream, name)]
    oldest = None
    if info["pending"]:
        first = await client.xpending_range(stream, name, min="-", max="+", count=1)
        oldest = int(first[0]["time_since_delivered"]) if first else None
    lag = info.get("lag")
    return GroupView(name, consumers, int(info["pending"]), None if lag is None else int(lag), oldest)


def every_partition(streams: tuple[str, ...]) -> list[str]:
    return [stream for base in streams for stream in partitions.streams(base)]


async def collect(client: aioredis.Redis, streams: tuple[str, ...] = STREAMS) -> tuple[list[StreamView], int]:
    """Views of `streams` (base names: the stream of every partition) and the dead letters of all."""
    views = []
    for stream in every_partition(streams):
        try:
            info = await client.xinfo_stream(stream)
        except ResponseError:
            views.append(StreamView(stream, 0, "-"))
            continue
        view = StreamView(stream, int(info["length"]), _s(info["last-generated-id"]))
        groups = await client.xinfo_groups(stream)
        view.groups = [await _group(client, stream, g) for g in groups]
        present = {_s(g["name"]) for g in groups}
        view.missing = [g for g in topology.groups_of(stream) if g not in present]
        views.append(view)
    return views, sum([int(await client.xlen(letters)) for letters in partitions.streams(DEAD_LETTERS)])


def _id_order(entry_id: bytes) -> tuple[int, int]:
    ms, _, seq = entry_id.partition(b"-")
    return int(ms), int(seq or 0)


def _group_lines(group: GroupView) -> list[str]:
    lag = "unknown" if group.lag is None else group.lag  # Redis 6.2 never says; 7+ not after deletions
    age = "-" if group.oldest_pending_ms is None else f"{group.oldest_pending_ms / 1000:.1f}s"
    return [f"  group {group.name:<28} pending {group.pending:<5} lag {lag!s:<7} oldest pending {age}",
            *(f"    consumer {name:<24} pending {pending:<5} idle {idle / 1000:.1f}s"
              for name, pending, idle in group.consumers)]


def _quiet(view: StreamView) -> bool:
    """An empty partition stream with every declared group present and nothing pending."""
    return view.length == 0 and not view.missing and not any(g.pending for g in view.groups)


def render(views: list[StreamView], dead: int) -> str:
    """One block per partition stream worth a look; the quiet ones (empty, nothing pending, no
    group missing) are counted in one line, so 16 partitions do not bury the three in use."""
    out = [f"{'stream':<26}{'length':>8}  last id", "-" * 64]
    quiet = [view for view in views if _quiet(view)]
    for view in (view for view in views if not _quiet(view)):
        out.append(f"{view.name:<26}{view.length:>8}  {view.last_id}")
        for group in view.groups:
            out += _group_lines(group)
        for name in view.missing:
            out.append(f"  group {name:<28} MISSING (declared; recreated by the next maintenance round)")
    if quiet:
        out.append(f"({len(quiet)} of {len(views)} partition streams are empty with nothing pending: not shown)")
    out.append(f"{DEAD_LETTERS + ':*':<26}{dead:>8}  (re-drive: make dead-letters ARGS='redrive <partition>/<id>')")
    return "\n".join(out)


async def dead_letters(client: aioredis.Redis, count: int = 20) -> str:
    """The newest dead letters of all partitions, each named "<partition>/<id>" (what a re-drive takes)."""
    rows = sorted([(p, *row) for p in partitions.every()
                   for row in as_entries(await client.xrevrange(partitions.stream(DEAD_LETTERS, p), count=count))],
                  key=lambda row: _id_order(row[1]), reverse=True)[:count]
    if not rows:
        return "no dead letters"
    out = [f"{'dead letter':<22}{'from':<36}{'group':<28}{'deliveries':>10}  error"]
    now_ms = await shared_clock.now_ms(client)  # entry ids are on the server's clock
    for p, entry_id, f in rows:  # .get: an entry someone added by hand must not break the listing
        origin = f"{_s(f.get(b'stream', b'?'))}/{_s(f.get(b'entry_id', b'?'))}"
        age = (now_ms - int(_s(entry_id).split("-")[0])) / 1000
        name = f"{p}/{_s(entry_id)}"
        out.append(f"{name:<22}{origin:<36}{_s(f.get(b'group', b'?')):<28}"
                   f"{_s(f.get(b'deliveries', b'?')):>10}  {_s(f.get(b'error', b'?'))[:200]} ({age:.0f}s ago)")
    return "\n".join(out)
