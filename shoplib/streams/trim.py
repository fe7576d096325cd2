"""Trimming that bounds memory and never drops an entry some group still has to process."""

from __future__ import annotations

import time

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from shoplib import faults


def _next_id(entry_id: str) -> str:
    ms, _, seq = entry_id.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


def _older(a: str, b: str) -> str:
    ka, kb = tuple(int(x) for x in a.split("-")), tuple(int(x) for x in b.split("-"))
    return a if ka <= kb else b


async def safe_floor(client: aioredis.Redis, stream: str) -> str | None:
    """The lowest id any group still needs (its oldest pending entry, or the first entry after
    what it has read); None when the stream does not exist."""
    try:
        groups = await client.xinfo_groups(stream)
    except ResponseError:
        return None
    floor: str | None = None
    for group in groups:
        name = group["name"]
        need = _next_id(group["last-delivered-id"].decode() if isinstance(group["last-delivered-id"], bytes)
                        else group["last-delivered-id"])
        if group["pending"]:
            summary = await client.xpending(stream, name)
            oldest = summary["min"]  # None when the group acknowledged everything since XINFO
            if oldest is not None:
                need = _older(oldest.decode() if isinstance(oldest, bytes) else oldest, need)
        floor = need if floor is None else _older(floor, need)
    return floor


async def trim(client: aioredis.Redis, stream: str, retain_ms: int) -> int:
    """Trim entries older than `retain_ms` that every group has processed; returns entries removed."""
    if not await client.exists(stream):
        return 0
    cutoff = f"{int(time.time() * 1000) - retain_ms}-0"
    floor = await safe_floor(client, stream)
    target = cutoff if floor is None or faults.fires("trim_pending") else _older(floor, cutoff)  # control: faults.py
    return int(await client.xtrim(stream, minid=target, approximate=True))
