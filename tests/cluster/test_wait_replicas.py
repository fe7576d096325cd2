"""REDIS_WAIT_REPLICAS: a commit returns only once the replica of its master holds it."""

from __future__ import annotations

import uuid
from typing import cast

import pytest
import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from shopctl.local_redis.cluster import LocalCluster
from shoplib.commit.committers import PipelinedCommitter
from shoplib.commit.replicated import ReplicatedCommitter
from shoplib.commit.writes import Writes
from shoplib.store import outage


def replica_value(cluster: LocalCluster, key: str) -> bytes | None:
    """`key` as the replica of its slot's master holds it now (READONLY: served by the replica)."""
    master = redis.RedisCluster.from_url(cluster.url)
    port = int(master.get_node_from_key(key).port)
    master.close()
    with redis.Redis(port=cluster.replica_of(port)) as replica:
        replica.execute_command("READONLY")
        return cast(bytes | None, replica.get(key))


async def test_a_waited_commit_is_on_the_replica_when_it_returns(redis_cluster: LocalCluster) -> None:
    client = cast(aioredis.Redis, RedisCluster.from_url(redis_cluster.url))
    committer = ReplicatedCommitter(PipelinedCommitter(client), client, replicas=1)
    keys = [f"wait:{{p{n}}}:{uuid.uuid4().hex}" for n in range(6)]  # tags spread over the masters
    for key in keys:
        writes = Writes()
        writes.set(key, "committed")
        assert await committer.commit(writes)
        assert replica_value(redis_cluster, key) == b"committed"
    await client.aclose()


async def test_fewer_replicas_than_asked_is_an_outage_not_a_success(redis_cluster: LocalCluster) -> None:
    client = cast(aioredis.Redis, RedisCluster.from_url(redis_cluster.url))
    committer = ReplicatedCommitter(PipelinedCommitter(client), client, replicas=2)  # each master has one
    writes = Writes()
    writes.set(f"wait:{{p0}}:{uuid.uuid4().hex}", "committed")
    with pytest.raises(ResponseError, match="NOREPLICAS") as raised:
        await committer.commit(writes)
    assert outage.is_outage(raised.value)  # retried by the caller, as any refusal
    await client.aclose()
