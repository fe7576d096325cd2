"""Trimming that bounds memory and never drops an entry some declared group still has to process."""

from __future__ import annotations

import time
from pathlib import Path

import redis.asyncio as aioredis

from shoplib import log, topology
from shoplib.streams.settings import Protections

_SCRIPT = Path(__file__).with_name("trim.lua").read_text()
_logger = log.get("shoplib.trim")


class Trimmer:
    """Runs trim.lua (atomic: group check, floor and XTRIM in one step)."""

    def __init__(self, client: aioredis.Redis, protections: Protections | None = None) -> None:
        self._script = client.register_script(_SCRIPT)
        self._protections = protections or Protections()

    async def trim(self, stream: str, retain_ms: int) -> int:
        """Trim entries older than `retain_ms` that every declared group has processed; returns
        entries removed (0 when a missing group had to be recreated first)."""
        cutoff = f"{int(time.time() * 1000) - retain_ms}-0"
        ignore = "" if self._protections.trim_floor else "1"
        groups = topology.groups_of(stream) if self._protections.declared_groups else ()
        removed = int(await self._script(keys=[stream], args=[cutoff, ignore, *groups]))
        if removed < 0:
            _logger.info("consumer.group_missing", stream=stream, declared=list(groups),
                         action="created from the start before trimming; nothing trimmed this round")
            return 0
        return removed


async def trim(client: aioredis.Redis, stream: str, retain_ms: int) -> int:
    """One-off trim (tests, tools): see Trimmer.trim."""
    return await Trimmer(client).trim(stream, retain_ms)
