"""REDIS_WAIT_REPLICAS=N: a commit is done only once N replicas hold it (Redis WAIT).

Redis replicates asynchronously: a master that acknowledged a commit and died before sending it
on loses it at the failover (the chaos scenario 16 counts such orders). With this setting each
commit is followed, on one connection to the master that owns its slot, by a marker write to
the same slot and `WAIT N <timeout>`: when the replicas have the marker they have the commit
before it. Fewer replicas in time raises NOREPLICAS, an outage: the caller retries, and the
commit's once key makes the retry a no-op. The cost is a round trip plus a replica
acknowledgement per commit (bench/scale.py measures it). Default 0: off.
"""

from __future__ import annotations

import re

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from shoplib import config
from shoplib.commit.committers import PipelinedCommitter
from shoplib.commit.writes import Ack, Committer, Once, Writes, script_arguments
from shoplib.security import redis_auth
from shoplib.store import connections

# A replica that has not acknowledged within this is away or far behind: refuse, as an outage.
WAIT_TIMEOUT_MS = 1_000
_TAG = re.compile(r"\{([^}]+)\}")


def marker(key: str, owner: str = "") -> str:
    """A key in the same slot as `key` (same hash tag), written so that WAIT has our offset:
    `replicated:{tag}`, or `replicated:{tag}:<owner>` for a process that is Redis user `owner`
    (the secure profile lets each service user write only its own markers: shoplib.security.acl)."""
    tag = _TAG.search(key)
    name = f"replicated:{{{tag.group(1) if tag else key}}}"
    return f"{name}:{owner}" if owner else name


class ReplicatedCommitter:
    """Wraps a committer: after each commit, WAIT until `replicas` replicas hold it."""

    def __init__(self, real: Committer, client: aioredis.Redis, replicas: int, owner: str = "") -> None:
        self._real, self._client, self._replicas, self._owner = real, client, replicas, owner
        self._nodes: dict[str, aioredis.Redis] = {}

    async def commit(self, writes: Writes, once: Once | None = None, ack: Ack | None = None) -> bool:
        done = await self._real.commit(writes, once, ack)
        keys, _ = script_arguments(writes, once, ack)
        if keys:
            await self._wait(keys[0])
        return done

    def _master_of(self, key: str) -> aioredis.Redis:
        """A plain client to the master that owns `key` (the client itself on one Redis)."""
        if not isinstance(self._client, RedisCluster):
            return self._client
        node = self._client.get_node_from_key(key)
        if node.name not in self._nodes:
            self._nodes[node.name] = connections.node_client(node)
        return self._nodes[node.name]

    async def _wait(self, key: str) -> None:
        async with self._master_of(key).pipeline(transaction=False) as pipe:  # one connection: our offset
            pipe.set(marker(key, self._owner), "1")
            pipe.execute_command("WAIT", self._replicas, WAIT_TIMEOUT_MS)
            _, acknowledged = await pipe.execute()
        if int(acknowledged) < self._replicas:
            raise ResponseError(f"NOREPLICAS {acknowledged} of {self._replicas} replicas within {WAIT_TIMEOUT_MS} ms")


def pipelined_committer(client: aioredis.Redis) -> Committer:
    """The services' PipelinedCommitter, waiting for REDIS_WAIT_REPLICAS replicas after each
    commit when that is set (> 0)."""
    replicas = config.optional("REDIS_WAIT_REPLICAS", 0, int)
    real = PipelinedCommitter(client)
    return ReplicatedCommitter(real, client, replicas, redis_auth.username()) if replicas > 0 else real
