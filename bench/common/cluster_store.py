"""The durable twin's commits and reads on a Redis Cluster, over one of two transports:

- `redis-py` (what the real stack does, shoplib.commit.committers.PipelinedCommitter and
  shoplib.streams.reads on a cluster): the commits of one event-loop turn go out in one redis-py
  cluster pipeline (split by node; EVALSHA as a plain command, its keys routing it), each read
  through the cluster client; with REDIS_WAIT_REPLICAS, SET marker + WAIT on a plain client to the
  key's master, as shoplib.commit.replicated does it.
- `lean`: one lean connection (shoplib.store.lean.RedisPipe) per master for the commits, the
  commands of one turn split by master and each master's written at once, a keyless one (WAIT)
  with the command before it; one lean blocking connection per read. The cheapest correct form:
  what is left on top of one Redis is the cluster's own cost.

Either way a read may not span slots, so a consumer reads each partition apart (as
shoplib.streams.consumer.read_groups does on a cluster).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Literal, cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster

from bench.common.durable import SCRIPT, LeanStore
from shoplib import config
from shoplib.commit.replicated import WAIT_TIMEOUT_MS, marker
from shoplib.store import connections
from shoplib.store.connections import SOCKET_TIMEOUT_S
from shoplib.store.lean import Arg, RedisPipe, Reply

Transport = Literal["redis-py", "lean"]
TRANSPORTS: tuple[Transport, ...] = ("redis-py", "lean")


def _key_of(command: Sequence[Arg]) -> str | None:
    """The key that routes a command of the twin (EVALSHA's first key), None for a keyless one."""
    name = str(command[0]).upper()
    at = 3 if name == "EVALSHA" else 1 if name in ("SET", "GET") else None
    return None if at is None else str(command[at])


def master_of(client: RedisCluster, key: str) -> ClusterNode:
    """The node serving `key`'s slot (the client's slot map, read at start)."""
    node = client.get_node_from_key(key)
    assert node is not None, f"no node serves {key!r}: the slot map is not read"
    return node


def node_pipe(client: RedisCluster, key: str, timeout_s: float = SOCKET_TIMEOUT_S,
              drop_on_cancel: bool = False) -> RedisPipe:
    """A lean connection to the master of `key`, as the cluster client would reach it."""
    pipe = RedisPipe.of(connections.node_client(master_of(client, key)), timeout_s, drop_on_cancel)
    assert pipe is not None, "a cluster node is a plain Redis"
    return pipe


class ClusterPipeline:
    """Batches through redis-py's cluster pipeline, replies (errors too) in order."""

    def __init__(self, client: RedisCluster) -> None:
        self._client = client

    def send_now(self, commands: Sequence[Sequence[Arg]]) -> None:
        return None  # redis-py connects and routes in a task, as the real committer's _flush

    async def execute(self, commands: Sequence[Sequence[Arg]]) -> list[Reply]:
        async with self._client.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            return list(await pipe.execute(raise_on_error=False))

    async def close(self) -> None:
        return None


class PerMaster:
    """One lean connection per master; a batch is split by the master of each command's key."""

    def __init__(self, client: RedisCluster) -> None:
        self._client = client
        self._pipes: dict[str, RedisPipe] = {}

    def send_now(self, commands: Sequence[Sequence[Arg]]) -> None:
        return None  # split and sent in a task: one write per master

    def _pipe(self, key: str) -> tuple[str, RedisPipe]:
        name = master_of(self._client, key).name
        if name not in self._pipes:
            self._pipes[name] = node_pipe(self._client, key)
        return name, self._pipes[name]

    async def execute(self, commands: Sequence[Sequence[Arg]]) -> list[Reply]:
        routed: dict[str, list[int]] = {}
        pipes: dict[str, RedisPipe] = {}
        name = ""
        for index, command in enumerate(commands):
            key = _key_of(command)
            if key is not None:
                name, pipes[name] = self._pipe(key)
            routed.setdefault(name, []).append(index)
        replies: list[Reply] = [None] * len(commands)
        answers = await asyncio.gather(*(pipes[n].execute([commands[i] for i in at]) for n, at in routed.items()))
        for at, answer in zip(routed.values(), answers, strict=True):
            for index, reply in zip(at, answer, strict=True):
                replies[index] = reply
        return replies

    async def close(self) -> None:
        for pipe in self._pipes.values():
            await pipe.close()


class ClusterStore(LeanStore):
    """LeanStore's commits on a cluster; with the redis-py transport the WAIT after a commit goes on
    a plain client to its key's master, as shoplib.commit.replicated.ReplicatedCommitter does it."""

    def __init__(self, client: RedisCluster, transport: Transport) -> None:
        pipe = PerMaster(client) if transport == "lean" else ClusterPipeline(client)
        super().__init__(cast(aioredis.Redis, client), pipe)
        self._cluster, self._transport = client, transport
        self._masters: dict[str, aioredis.Redis] = {}

    async def start(self) -> None:
        await self._cluster.initialize()
        await self._cluster.script_load(SCRIPT)  # redis-py sends SCRIPT LOAD to every master

    async def wait_replicas(self, key: str) -> Reply:
        if self._transport == "lean":
            return await super().wait_replicas(key)
        node = master_of(self._cluster, key)
        if node.name not in self._masters:
            self._masters[node.name] = connections.node_client(node)
        async with self._masters[node.name].pipeline(transaction=False) as pipe:  # one connection: our offset
            pipe.set(marker(key), "1")
            pipe.execute_command("WAIT", self.replicas, WAIT_TIMEOUT_MS)
            return (await pipe.execute())[1]

    async def aclose(self) -> None:
        for client in self._masters.values():
            await client.aclose()
        await super().aclose()


async def connect(url: str, transport: Transport) -> ClusterStore:
    """A ClusterStore on the cluster at `url` (REDIS_CLUSTER=1), its script loaded on every master."""
    client = connections.connect(url)
    assert isinstance(client, RedisCluster), "REDIS_CLUSTER=1 for a cluster store"
    store = ClusterStore(client, transport)
    await store.start()
    return store


def transport_from(value: str) -> Transport:
    if value not in TRANSPORTS:
        raise config.ConfigError(f"twin transport {value!r} is not one of {', '.join(TRANSPORTS)}")
    return value
