"""Trimming that bounds memory and never drops an entry some declared group still has to process."""

from __future__ import annotations

from pathlib import Path

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from shoplib import log
from shoplib.streams import topology

_SCRIPT = Path(__file__).with_name("trim.lua").read_text()
_logger = log.get("shoplib.trim")


class Trimmer:
    """Runs trim.lua (atomic: group check, floor and XTRIM in one step)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client, self._script = client, client.register_script(_SCRIPT)

    def _args(self, stream: str, retain_ms: int) -> list[str]:
        """ARGV of trim.lua: the age kept, no override of the floor (what groups still need is
        kept), the declared groups (recreated first where missing). The cutoff comes from the
        server's clock, in the script. A control run's trimmer (shoplib.faults) changes these."""
        return [str(retain_ms), "", *topology.groups_of(stream)]

    async def trim(self, stream: str, retain_ms: int) -> int:
        """Trim entries older than `retain_ms` that every declared group has processed; returns
        entries removed (0 when a missing group had to be recreated first)."""
        return self._removed(stream, int(await self._script(keys=[stream], args=self._args(stream, retain_ms))))

    async def trim_all(self, streams: list[str], retain_ms: int) -> int:
        """`trim` of every stream, in one pipeline (EVALSHA as a plain command: a cluster pipeline
        refuses `evalsha`); a stream whose script was not loaded (NOSCRIPT) is trimmed alone."""
        async with self._client.pipeline(transaction=False) as pipe:
            for stream in streams:
                pipe.execute_command("EVALSHA", self._script.sha, 1, stream, *self._args(stream, retain_ms))
            replies = await pipe.execute(raise_on_error=False)
        removed = 0
        for stream, reply in zip(streams, replies, strict=True):
            if isinstance(reply, NoScriptError):
                removed += await self.trim(stream, retain_ms)
            elif isinstance(reply, Exception):
                raise reply
            else:
                removed += self._removed(stream, int(reply))
        return removed

    def _removed(self, stream: str, removed: int) -> int:
        if removed < 0:
            _logger.info("consumer.group_missing", stream=stream, declared=list(topology.groups_of(stream)),
                         action="created from the start before trimming; nothing trimmed this round")
            return 0
        return removed


async def trim(client: aioredis.Redis, stream: str, retain_ms: int) -> int:
    """One-off trim (tests, tools): see Trimmer.trim."""
    return await Trimmer(client).trim(stream, retain_ms)
