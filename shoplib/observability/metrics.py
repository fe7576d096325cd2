"""Prometheus metrics: the families every service records, and its /metrics endpoint.

Hot paths do one thing each: a histogram observe per RPC (server and client) and per commit, a
counter increment per event outcome. Everything that needs a look at Redis (group lag, pending,
oldest pending age) is sampled by a background task, never per request; the outage and readiness
state are read when scraped. The families live in the process's default registry, so the counters
cost the same with the endpoint off (`*_METRICS_PORT=0`); only the endpoint and the sampler are off.
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from threading import Thread
from wsgiref.simple_server import WSGIServer

import redis.asyncio as aioredis
from prometheus_client import Counter, Gauge, Histogram, start_http_server

from shoplib import log
from shoplib.store import partitions
from shoplib.store.outage import StoreGate
from shoplib.streams import status, topology

# Group lag, pending and oldest pending age are read from Redis this often (a few XINFO calls).
SAMPLE_INTERVAL_S = 5.0
# RPCs and commits take from under a millisecond (a commit, a cached read) to the deadline budget.
LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_logger = log.get("shoplib.observability.metrics")

SERVER_RPC_SECONDS = Histogram(
    "shop_rpc_server_duration_seconds", "Time to answer one RPC, by method and status code (streams: their life).",
    ["method", "code"], buckets=LATENCY_BUCKETS_S)
CLIENT_RPC_SECONDS = Histogram(
    "shop_rpc_client_duration_seconds", "Time an outbound RPC took, by method and status code.",
    ["method", "code"], buckets=LATENCY_BUCKETS_S)
COMMIT_SECONDS = Histogram(
    "shop_commit_duration_seconds", "Time one atomic commit (the Lua script) took, as its caller waited.",
    buckets=LATENCY_BUCKETS_S)
ORDER_PLACE_SECONDS = Histogram(
    "shop_order_place_duration_seconds",
    "Time the gateway took to answer PlaceOrder, by flow mode (sync, events) and outcome: the order's "
    "status in the answer (paid, payment_declined: sync; pending: events) or the error code (unavailable...).",
    ["mode", "outcome"], buckets=LATENCY_BUCKETS_S)
EVENTS_HANDLED = Counter("shop_events_handled_total", "Stream entries a handler completed.", ["stream", "group"])
EVENTS_FAILED = Counter("shop_events_failed_total", "Handler failures (the entry stays pending).", ["stream", "group"])
EVENTS_DEAD_LETTERED = Counter(
    "shop_events_dead_lettered_total", "Entries sent to the dead letters.", ["stream", "group"])
EVENTS_RECLAIMED = Counter(
    "shop_events_reclaimed_total", "Entries taken over from idle consumers.", ["stream", "group"])
GROUP_LAG = Gauge("shop_stream_group_lag_entries",
                  "Entries not yet delivered to the group (sampled; NaN: Redis cannot say, as 6.2 never can).",
                  ["stream", "group"])
GROUP_PENDING = Gauge("shop_stream_group_pending_entries", "Entries delivered, not yet acknowledged (sampled).",
                      ["stream", "group"])
GROUP_OLDEST_PENDING = Gauge(
    "shop_stream_group_oldest_pending_age_seconds", "Since the oldest pending entry was delivered (sampled; 0: none).",
    ["stream", "group"])
# A family's labels() takes a lock and builds a key on every call; its label sets are few and
# fixed (registered methods x status codes), so each child is looked up once and remembered.
LABEL_SETS_KEPT = 1024
server_rpc = functools.lru_cache(maxsize=LABEL_SETS_KEPT)(SERVER_RPC_SECONDS.labels)
client_rpc = functools.lru_cache(maxsize=LABEL_SETS_KEPT)(CLIENT_RPC_SECONDS.labels)
order_placed = functools.lru_cache(maxsize=LABEL_SETS_KEPT)(ORDER_PLACE_SECONDS.labels)  # (mode, outcome)
events_handled = functools.lru_cache(maxsize=LABEL_SETS_KEPT)(EVENTS_HANDLED.labels)  # (stream, group): every entry
STORE_OPEN = Gauge("shop_store_open", "1 while the store takes writes, 0 during an outage.", ["service"])
READY = Gauge("shop_ready", "1 while readiness is SERVING, 0 while NOT_SERVING.", ["service"])


@dataclass(frozen=True)
class Exposed:
    """What a service's bootstrap hands over for /metrics beyond the counters: the port (0: off),
    its store's outage gate, and the Redis client and (stream, group) pairs whose state is sampled."""

    port: int = 0
    gate: StoreGate | None = None
    client: aioredis.Redis | None = None
    groups: Sequence[tuple[str, str]] = ()


def producing(port: int, gate: StoreGate, client: aioredis.Redis, stream: str) -> Exposed:
    """What a service writing `stream` exposes: its gate, and how far behind each group reading
    that stream is. The producer reports it, so a consumer that is stopped or stuck (and could not
    report anything) still shows as lag, and each (stream, group) is reported by one service."""
    return Exposed(port, gate, client, [(stream, group) for group in topology.GROUPS[stream]])


class MetricsServer:
    """/metrics over HTTP, in its own thread (prometheus-client's server)."""

    def __init__(self, host: str, port: int) -> None:
        self._server: WSGIServer
        self._thread: Thread
        self._server, self._thread = start_http_server(port, addr=host)
        self.port = int(self._server.server_port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def report_state(service: str, ready: Callable[[], bool], gate: StoreGate | None) -> None:
    """Readiness and the store's gate, read at each scrape (nothing per request)."""
    READY.labels(service).set_function(lambda: float(ready()))
    if gate is not None:
        STORE_OPEN.labels(service).set_function(lambda: float(gate.is_open))


async def sample_groups(client: aioredis.Redis, groups: Sequence[tuple[str, str]]) -> None:
    """Set the lag, pending and oldest-pending gauges of these groups once: labelled by base
    stream name, summed (lag, pending) or the worst (oldest pending) over the partitions. A lag
    that Redis does not report for some partition (6.2 has no lag; 7+ none after deletions) makes
    the sum unknown: NaN, never a 0 that would read as "caught up"."""
    wanted = set(groups)
    views, _ = await status.collect(client, tuple(dict.fromkeys(stream for stream, _ in groups)))
    totals: dict[tuple[str, str], list[float]] = {}
    for view in views:
        for group in view.groups:
            labels = (partitions.base(view.name), group.name)
            if labels in wanted:
                lag, pending, oldest = totals.setdefault(labels, [0, 0, 0])
                totals[labels] = [lag + (math.nan if group.lag is None else group.lag), pending + group.pending,
                                  max(oldest, (group.oldest_pending_ms or 0) / 1000)]
    for labels, (lag, pending, oldest) in totals.items():
        GROUP_LAG.labels(*labels).set(lag)
        GROUP_PENDING.labels(*labels).set(pending)
        GROUP_OLDEST_PENDING.labels(*labels).set(oldest)


def group_sampler(client: aioredis.Redis, groups: Sequence[tuple[str, str]]) -> Callable[[], Awaitable[None]]:
    """A background job sampling the groups every SAMPLE_INTERVAL_S. A failed round (Redis away)
    is logged and skipped: the sampler never counts as a failing task against readiness."""
    async def sample_streams() -> None:
        while True:
            try:
                await sample_groups(client, groups)
            except Exception as exc:
                _logger.debug("metrics.sample_failed", error=type(exc).__name__)
            await asyncio.sleep(SAMPLE_INTERVAL_S)

    return sample_streams
