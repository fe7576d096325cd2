"""The chaos suite on a Redis Cluster (issue 10): 15. the consumer kill storm with two instances
of every consumer service, 16. a master SIGKILLed mid-run while its replica takes over.

A ClusterRun is a Run whose store is a private LocalCluster (3 masters + 3 replicas, AOF, node
timeout 1.5 s) and whose services run with REDIS_CLUSTER=1; the checker reads it through a
cluster client. Redis replicates asynchronously: a write the master acknowledged and had not yet
sent to its replica is gone after the failover. Scenario 16 counts such orders (`lost` by the
checker) in its notes instead of failing on them; duplicates and stuck orders still fail it.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode as RedisNode
from redis.asyncio.cluster import RedisCluster

from shopctl.chaos.harness import Outcome, Run
from shopctl.chaos.recorder import Workload
from shopctl.chaos.scenarios.base import SUBSCRIPTIONS, Env, Scenario, during_load
from shopctl.chaos.scenarios.refused import SPENT
from shopctl.chaos.scenarios.workers import kill_storm
from shopctl.local_redis.cluster import LocalCluster
from shopctl.local_redis.server import free_port

# The second instance of each consumer service besides payment (kill_storm adds payment-b itself).
SECOND_INSTANCES = ("order", "notification")
FAILOVER_ORDERS = {"full": 3000, "quick": 300, "control": 200, "small": 160}  # small: tests/cluster
KILL_AT = 0.4  # of the orders: work before the failover and after it
# While a master is down its slots refuse (CLUSTERDOWN, then MOVED once the replica took over):
# callers hear UNAVAILABLE and retry; 10 attempts back off over about 6 s, past a failover's ~3 s.
CODES = frozenset({"OK", "UNAVAILABLE"})
RECOVERED = "store.recovered"  # a process's store takes writes again (shoplib.store.outage.StoreGate)
ATTEMPTS = 10
CLIENT_TIMEOUT_S = 10


class ClusterRun(Run):
    """A Run on a private Redis Cluster, with a second order and notification worker."""

    def __init__(self, log_dir: Path, seed: int, env: dict[str, str] | None = None, **options: Any) -> None:
        super().__init__(log_dir, seed, {"REDIS_CLUSTER": "1", **(env or {})}, **options)
        self.cluster = LocalCluster()
        self.stack.redis_url = self.cluster.url
        # the stack's free ports were drawn before the cluster's, none bound yet: draw again any they share
        taken = {port for node in self.cluster.nodes for port in (node.port, node.bus_port)}
        for name, port in self.stack.ports.items():
            while port in taken:
                port = self.stack.ports[name] = free_port()

    async def __aenter__(self) -> ClusterRun:
        await super().__aenter__()
        try:
            for service in SECOND_INSTANCES:
                await self.add_worker(f"{service}-b", service, "b")
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def start_store(self) -> None:
        await asyncio.to_thread(self.cluster.start)

    def store_client(self) -> aioredis.Redis:
        """A cluster client that knows every node: its first command may come after the node of
        the URL was SIGKILLed. (RedisCluster offers the single-node client's command methods.)"""
        nodes = [RedisNode("127.0.0.1", node.port) for node in self.cluster.nodes]
        return cast(aioredis.Redis, RedisCluster(startup_nodes=nodes, socket_timeout=CLIENT_TIMEOUT_S))

    async def close_store(self) -> None:
        await asyncio.to_thread(self.cluster.close)


class ClusterEnv(Env):
    def run(self, **options: Any) -> Run:
        return ClusterRun(self.log_dir, self.seed, **options)


def on_cluster(env: Env) -> ClusterEnv:
    return ClusterEnv(env.sizes, env.log_dir, env.seed)


async def cluster_kill_storm(sc: Scenario, env: Env, control: bool) -> Outcome:
    """Scenario 1's storm on the cluster, two workers of every consumer service."""
    return await kill_storm(sc, on_cluster(env), control)


async def _fail_over(run: ClusterRun, at_order: float) -> dict[str, Any]:
    """SIGKILL a master once `at_order` orders are done; wait until its replica serves its slots."""
    if not await run.load.until(at_order):
        return {}
    cluster = run.cluster
    victim = run.rng.choice(cluster.masters())
    replica = cluster.replica_of(victim)
    killed, killed_at = time.monotonic(), time.time()
    await asyncio.to_thread(cluster.kill, victim)
    run.fault("master_kill")
    await asyncio.to_thread(cluster.wait_ok)
    return {"victim": victim, "replica": replica, "promoted": replica in cluster.masters(),
            "failover_s": round(time.monotonic() - killed, 2), "killed_at": killed_at}


def _logged_at(event: dict[str, Any]) -> float:
    """A service log line's wall-clock time (its ISO-8601 UTC `timestamp`), in seconds."""
    return datetime.fromisoformat(str(event.get("timestamp", "")).replace("Z", "+00:00")).timestamp()


def _spent(run: Run, since: float) -> None:
    """No delivery may be counted against an entry across the failover: nothing here is poison, so
    each such `event.failed` is a failover error taken for the entry's fault (what the control's
    switch does to all). The window runs from the kill (wall clock `since`) to each process's last
    store recovery (to its end, if it never saw the outage end, as under the control): a handler
    timing out in a CPU stall before the kill, or as every consumer catches up after its store
    came back, is an ordinary failure, not the failover's (seen: 14 at once, 2 s before a kill)."""
    lines = [(p, e) for p, e in run.logged(SPENT, RECOVERED) if _logged_at(e) >= since]
    last = {process: i for i, (process, event) in enumerate(lines) if event.get("event") == RECOVERED}
    failed = Counter(f"{process}: {str(event.get('error', ''))[:60]}" for i, (process, event) in enumerate(lines)
                     if event.get("event") == SPENT and i < last.get(process, len(lines)))
    if failed:
        run.fail("deliveries_spent", f"{failed.total()} deliveries counted against entries across the failover: "
                                     f"{failed.most_common(3)}")


async def master_failover(sc: Scenario, env: Env, control: bool) -> Outcome:
    """Control: an unreachable or refusing store counts as a handler failure (outage_as_failure):
    entries in flight when the master dies have deliveries counted against them. (A control of
    skip_once was tried first: it was caught only when an entry happened to be redelivered.)"""
    orders = FAILOVER_ORDERS[env.sizes.name]
    armed = {"FAULTS": "outage_as_failure"} if control else {}
    async with on_cluster(env).run(per_service=dict.fromkeys(SUBSCRIPTIONS, armed)) as run:
        assert isinstance(run, ClusterRun)
        await run.add_worker("payment-b", "payment", "b")
        load = run.recorder(Workload(orders, attempts=ATTEMPTS))
        failover, _ = await asyncio.gather(during_load(load, _fail_over(run, KILL_AT * orders)), load.run())
        judgement, _ = await run.judge(allowed_codes=CODES)
        lost = judgement.counts.lost  # acknowledged, then gone with the master's unreplicated writes
        judgement.failures = [f for f in judgement.failures if f.kind != "lost"]
        if failover.get("promoted"):
            run.prove(f"master :{failover['victim']} SIGKILLed; replica :{failover['replica']} serves its slots "
                      f"after {failover['failover_s']} s; {lost} acknowledged orders lost to async replication")
        elif failover:
            run.fail("failover", f"the replica of :{failover['victim']} did not take over: {failover}")
        _spent(run, failover.get("killed_at", 0.0))
        run.notes.update(failover, lost_by_async_replication=lost)
        return sc.outcome(run, judgement, control)


# Run by `make chaos` (full sizes) after the single-Redis scenarios, and by `--only 15,16`; not by
# the reduced `--quick` run of `make test`, whose cluster checks are tests/cluster/.
CLUSTER_SCENARIOS = (
    Scenario(15, "cluster-kill-storm", "kill storm on a cluster, 2 of each", "no reclaim (no_reclaim)", "stuck",
             cluster_kill_storm),
    Scenario(16, "master-failover", "cluster master SIGKILLed", "outage as failure (outage_as_failure)",
             "deliveries_spent", master_failover),
)
