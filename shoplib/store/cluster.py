"""The cluster client the services use: redis-py's RedisCluster, made to re-read its slot map
after a failover whatever command met the failed node.

redis-py 8.1 re-reads the map (CLUSTER SLOTS) only when a command fails while talking to a
slot's node. A command whose keys it must ask a node for (XREADGROUP, EVALSHA: "movable keys",
COMMAND GETKEYS) asks the node it chose at start-up; once that node is SIGKILLed the question
fails before any slot's node is reached, so the map, and that node, are never renewed: every such
command fails for ever although the replica took over (seen: every consumer of a chaos run
reading nothing after a master's failover). Here any connection-level failure of a command makes
the client forget its map and connections (at most once per REFRESH_MIN_INTERVAL_S), so the next
command reads the map again from the nodes it knows.

A Redis user without CLUSTER SLOTS (the slot map) gets from redis-py "Cluster mode is not enabled
on this node", on a cluster: here it is the NOPERM it is, naming the permission to grant.
"""

from __future__ import annotations

import time
from typing import Any

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoPermissionError, RedisClusterException
from redis.exceptions import TimeoutError as RedisTimeoutError

from shoplib import log

# Forgetting the map drops every connection of the client, including those of commands of other
# tasks in flight: not more often than this while a node stays unreachable.
REFRESH_MIN_INTERVAL_S = 0.5
_logger = log.get("shoplib.store.cluster")


class RefreshingCluster(RedisCluster):
    """RedisCluster whose failed commands make it re-read the slot map (module docstring)."""

    _refreshed_at = 0.0  # monotonic seconds of the last refresh (never: 0)

    async def initialize(self, additional_startup_nodes_info: list[tuple[str, int]] | None = None,
                         last_failed_node_name: str | None = None) -> RedisCluster:
        try:
            return await super().initialize(additional_startup_nodes_info, last_failed_node_name)
        except RedisClusterException as exc:
            refused = _refusal_in(exc)
            if refused is None:
                raise
            raise NoPermissionError(f"{refused} (CLUSTER SLOTS: a cluster client reads the slot map with it; "
                                    "grant +cluster|slots)") from exc

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().execute_command(*args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError):
            await self.refresh_slot_map()
            raise

    async def refresh_slot_map(self) -> None:
        """Drop the slot map and every connection; the next command fetches the map again."""
        now = time.monotonic()
        if now - self._refreshed_at < REFRESH_MIN_INTERVAL_S:
            return
        self._refreshed_at = now
        _logger.info("redis.cluster_map_refresh")
        await self.aclose()


def _refusal_in(exc: BaseException) -> NoPermissionError | None:
    """The NOPERM behind a cluster client's error, if one is (redis-py raises its own words from it)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, NoPermissionError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
