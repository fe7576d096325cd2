"""Outage, bad entry or bug: which store failures mean "Redis cannot serve us for now".

An outage is waited out (callers get UNAVAILABLE with RetryInfo, readiness turns NOT_SERVING,
consumers hold their entries and back off), never counted against an entry, never a dead letter.
`StoreGate` is one process's view of it: closed by any outage error seen, opened again by a
successful write probe.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import PurePath

import redis.asyncio as aioredis
from redis import exceptions as rx
from redis.asyncio.cluster import RedisCluster

from shoplib import log
from shoplib.store import partitions

# Replies with which Redis refuses a command for now, and says so by their first word: memory
# full (OOM), a replica (READONLY), a failed snapshot (MISCONF), loading data (LOADING), a busy
# script (BUSY), no reachable master (MASTERDOWN), too few replicas (NOREPLICAS), a slot moving
# (TRYAGAIN), a cluster not serving (CLUSTERDOWN), a blocked read cut by a role change
# (UNBLOCKED), and our own commit script's backpressure on a full stream (BACKLOG).
REFUSALS = ("OOM", "READONLY", "MISCONF", "LOADING", "BUSY", "MASTERDOWN", "NOREPLICAS", "TRYAGAIN",
            "CLUSTERDOWN", "UNBLOCKED", "BACKLOG")
# Redis 6.2 wraps an error reply met inside a script in its own: "Error running script (call to
# f_<sha>): @user_script:1: @user_script: 1: -OOM command not allowed ..." (a refusal by the script
# layer: "-OOM"; one by the command itself: "NOGROUP No such key ..."). The wrapped reply is what
# happened, so its code decides, as if it came bare (Redis 7 passes the reply through as it is).
_WRAPPED_BY_SCRIPT = re.compile(r"^(?:ERR )?Error running script \(call to [^)]*\): (?:@user_script: ?\d+: )*-?"
                                r"([A-Z]+)\b")
# redis-py strips the first word of the refusals it knows and raises these classes instead. On a
# Redis Cluster: CLUSTERDOWN / MASTERDOWN (ClusterDownError, MasterDownError), redirections that
# never settle during a failover (ClusterError "TTL exhausted", or a MOVED/ASK that reaches us:
# AskError, MovedError), and a slot no reachable master serves (SlotNotCoveredError).
_REFUSAL_CLASSES: tuple[type[BaseException], ...] = (
    rx.OutOfMemoryError, rx.ReadOnlyError, rx.BusyLoadingError, rx.TryAgainError, rx.ClusterDownError,
    rx.ConnectionError, rx.TimeoutError, rx.ClusterError, ConnectionError, rx.AskError, rx.SlotNotCoveredError)
_CLASS_CODES = {rx.OutOfMemoryError: "OOM", rx.ReadOnlyError: "READONLY", rx.BusyLoadingError: "LOADING",
                rx.TryAgainError: "TRYAGAIN", rx.MasterDownError: "MASTERDOWN", rx.ClusterDownError: "CLUSTERDOWN"}

# redis-py 8.1's cluster client closes every connection of a node, or of the whole client, when
# one command meets a failed node (ConnectionError, CLUSTERDOWN, a pipeline's retry); a command of
# another task on one of those connections then fails inside redis-py's connection code with its
# transport gone: RuntimeError (uvloop: "the handler is closed") or AttributeError (its writer is
# already None). Raised from that module, they are a broken connection, i.e. an outage.
_TORN = (RuntimeError, AttributeError)
_CONNECTION_CODE = ("redis", "asyncio", "connection.py")
# The cluster client's own words when no node it knows can give it a full slot map (every startup
# node unreachable, or slots uncovered while a replica is being promoted).
_NO_SLOT_MAP = ("Redis Cluster cannot be connected", "All slots are not covered")

# Backoff between write probes while the store refuses: quick first tries, then at most this.
PROBE_BACKOFF_MIN_S = 0.05
PROBE_BACKOFF_MAX_S = 1.0
_logger = log.get("shoplib.store.outage")


def reply_code(exc: BaseException) -> str:
    """The code of an error reply: its first word ("OOM", "NOGROUP"), or the wrapped reply's first
    word when a script error wraps it (Redis 6.2, see _WRAPPED_BY_SCRIPT)."""
    message = str(exc)
    wrapped = _WRAPPED_BY_SCRIPT.match(message)
    return wrapped[1] if wrapped else message.split(" ", 1)[0]


def is_outage(exc: BaseException) -> bool:
    """True when `exc` says the store cannot serve for now (down, unreachable, refusing writes)."""
    if isinstance(exc, rx.ResponseError) and not isinstance(exc, _REFUSAL_CLASSES):
        return reply_code(exc) in REFUSALS
    if isinstance(exc, _REFUSAL_CLASSES) or _torn_connection(exc):
        return True
    return isinstance(exc, rx.RedisClusterException) and str(exc).startswith(_NO_SLOT_MAP)


def _torn_connection(exc: BaseException) -> bool:
    """A RuntimeError / AttributeError raised inside redis-py's connection code (see _TORN)."""
    if not isinstance(exc, _TORN):
        return False
    frame = exc.__traceback__
    while frame is not None:
        if PurePath(frame.tb_frame.f_code.co_filename).parts[-3:] == _CONNECTION_CODE:
            return True
        frame = frame.tb_next
    return False


# Where our store clients wait for Redis: redis-py's package, and our own lean connection, its
# reads, the pipelined committer and the replica wait (the last two parts of each file's path).
_STORE_CLIENT_CODE = frozenset({("store", "lean.py"), ("store", "reads.py"), ("commit", "committers.py"),
                                ("commit", "replicated.py")})


def waited_on_store(exc: BaseException | None) -> bool:
    """True when `exc` (a cancellation: a time limit that cut a task off) landed while the task
    waited on the store: its traceback passes through a store client's code."""
    frame = exc.__traceback__ if exc is not None else None
    while frame is not None:
        parts = PurePath(frame.tb_frame.f_code.co_filename).parts
        if "redis" in parts[-3:-1] or (parts[-3:-2] == ("shoplib",) and tuple(parts[-2:]) in _STORE_CLIENT_CODE):
            return True
        frame = frame.tb_next
    return False


def describe(exc: BaseException) -> str:
    """What failed, short and free of secrets: "OOM", "READONLY", "ConnectionError", ..."""
    for cls, code in _CLASS_CODES.items():
        if type(exc) is cls:
            return code
    if isinstance(exc, rx.ResponseError):
        return reply_code(exc)[:20]
    if _torn_connection(exc):
        return "ConnectionClosed"
    return type(exc).__name__


# Written by every write probe; expires by itself.
PROBE_TTL_MS = 10_000


def write_probe(client: aioredis.Redis, key: str) -> Callable[[], Awaitable[object]]:
    """A probe that fails whenever a real write would: PING cannot see a store refusing writes.
    On a Redis Cluster it writes `key:{pN}` in every partition (one pipeline, split by node), so a
    failed master closes the gate, as a failed single Redis does, until its replica took over."""
    if not isinstance(client, RedisCluster):
        return lambda: client.set(key, "1", px=PROBE_TTL_MS)
    keys = [partitions.key(key, p) for p in partitions.every()]

    async def probe() -> object:
        async with client.pipeline(transaction=False) as pipe:
            for each in keys:
                pipe.set(each, "1", px=PROBE_TTL_MS)
            return await pipe.execute()

    return probe


class StoreGate:
    """Whether this process may expect writes to succeed; `probe` is a small real write.

    Closed by `report()` (an outage error seen anywhere), opened by a successful probe. Waiters
    probe with jittered backoff, one probe at a time for the whole process."""

    def __init__(self, probe: Callable[[], Awaitable[object]]) -> None:
        self._probe = probe
        self._open = asyncio.Event()
        self._open.set()
        self._lock = asyncio.Lock()
        self.reason = ""
        self.opened_at = -math.inf  # monotonic time the last outage ended (never: long ago)

    @property
    def is_open(self) -> bool:
        return self._open.is_set()

    def report(self, exc: BaseException) -> None:
        if self._open.is_set():
            self.reason = describe(exc)
            _logger.warning("store.outage", reason=self.reason)
            self._open.clear()

    async def check(self) -> None:
        """Probe once: opens the gate on success, closes it and raises on an outage."""
        try:
            await self._probe()
        except Exception as exc:
            if is_outage(exc):
                self.report(exc)
            raise
        if not self._open.is_set():
            _logger.info("store.recovered", after=self.reason)
            self.opened_at = time.monotonic()
            self._open.set()

    async def wait_open(self, stopping: asyncio.Event | None = None) -> bool:
        """Wait until the store takes writes again; False if `stopping` was set first."""
        delay = PROBE_BACKOFF_MIN_S
        while not self._open.is_set():
            if stopping is not None and stopping.is_set():
                return False
            async with self._lock:
                if not self._open.is_set():
                    try:
                        await self.check()
                    except Exception as exc:
                        if not is_outage(exc):
                            raise
            if not self._open.is_set():
                await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(delay * 2, PROBE_BACKOFF_MAX_S)
        return True
