"""Speed at scale, in one run: events-mode orders through the gateway(s) on one Redis and on a
3-master + 3-replica Redis Cluster, with 1 and with 2 instances of every service, and on the
cluster with REDIS_WAIT_REPLICAS=1 (each commit waits for a replica); each setup run by the real
stack and by its durable twin, back to back.

    .venv/bin/python -m bench.scale [--quick] [--no-lean]      (make bench-scale)

The durable twin (twin.py) makes the real stack's commits the cheapest way (bench.common.durable:
one EVALSHA per commit, the same keys, stream entries and sizes, the same GET, WAIT when
REDIS_WAIT_REPLICAS is set) behind gRPC hops with empty handlers and lean consumers
(bench.events.lean), as many processes of each role as the real setup has. On the cluster it runs
twice (bench.common.cluster_store): over redis-py's cluster client, as the real stack's
PipelinedCommitter and reads do there ("twin"), and over one lean connection per master ("lean"),
so the growth over one Redis splits into the cluster's own, redis-py's, and ours.

Counted with INFO commandstats on every master over the measured run (printed per setup; a quick
run on 2 shared cores, 16 partitions, 64 in flight), per order, the twin and the real stack alike:
5 EVALSHA (the commits) and 1 GET, on one Redis and on the cluster. What grows on the cluster is
the reads: one XREADGROUP per batch on one Redis (0.9-1.4 per order), one per partition's batch on
the cluster (2.9-3.9 per order: smaller batches, 16 reads where there was one), and through
redis-py's cluster client (the real stack's, and the "twin" transport) each XREADGROUP costs two
COMMAND GETKEYS more (5.7-7.0 per order; XREADGROUP has movable keys, redis-py asks a node for
them), which the lean transport does not pay. With REDIS_WAIT_REPLICAS=1 every commit adds one
SET of its marker and one WAIT (5 each per order; the twin's `wait_replicas`). The real stack adds
its chores beside (XLEN and TIME inside its scripts, XAUTOCLAIM, XPENDING, XTRIM, XINFO, leases).

For each setup: a warm-up, then IN_FLIGHT callers for a fixed time (bench.scale.run); the
consumers are let finish before the CPU of every process of the setup (services and Redis
servers; not the bench client) is read. CPU per order is that sum over the orders placed; issue
24's aim is the real stack at most 1.2x its single-Redis, one-instance figure. On 2 cores
throughput cannot grow with instances. Prints; asserts nothing.
"""
