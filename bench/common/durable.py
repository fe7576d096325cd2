"""The durable work of one order, done the cheapest correct way: what the durable bare twins store.

Counted on the real stack (`redis-cli MONITOR` on a bench Redis started on a free port, 3 orders
per mode at 1 in flight after a warm-up; background chores left out): every hop's commit is one
EVALSHA of shoplib/commit/commit.lua, and nothing else reaches Redis on an order's path but these (p:
the order's partition; every key of one order is in its slot):

    hop (commit)             sync mode                          events mode adds
    order, place             SET order:{p}:key:<k> NX (64 B),   XADD order-events:{p} (408 B)
                             SET order:{p}:<id> (129 B),
                             PUBLISH order:updates, ZADD pending-sync
    notification, received   SET notification:{p}:<id>:1 NX     XADD notification-events:{p}
                             (160 B), RPUSH notification:{p}:<id> (462 B), XACK order-events
    payment, charge          SET payment:{p}:<id> NX (101 B),   XADD payment-events:{p} (396 B),
                             RPUSH payment:{p}:ledger <id>      XACK order-events
    notification, receipt    SET notification:{p}:<id>:2 NX     as received, XACK payment-events
                             (176 B), RPUSH notification:{p}:<id>
    order, settle            SET order:{p}:settled:<id> NX,     a GET order:{p}:<id> before it
                             SET order:{p}:<id>, PUBLISH,       (its own round trip), XACK
                             ZREM pending-sync                  payment-events; pending-events

Five commits per order in either mode, one round trip each, each fsynced by Redis before it
answers (the benches' Redis: appendonly yes, appendfsync always, shopctl.local_redis.server); events
mode adds one GET, and the consumers' XREADGROUPs (one per batch). The sizes are those of the
real stack's keys and entries (STRLEN, XRANGE after a run). With REDIS_WAIT_REPLICAS=N each
commit is followed, as shoplib.commit.replicated does it, by a second round trip: SET of the slot's
marker and WAIT N.

Here each commit is one EVALSHA of a script with no checks (no backlog bound, no pending check,
no argument table beyond the writes), on a lean connection (shoplib.store.lean) where all the
commands of one event-loop turn travel in one write: the cheapest correct form of the same work.
On a Redis Cluster the same commits go over bench.common.cluster_store's transports.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import redis.asyncio as aioredis
from shop.v1 import types_pb2

from notification_svc.adapters import notes_key
from order_svc.adapters import UPDATES_CHANNEL, order_key, pending_key, reservation_key
from payment_svc.adapters import ledger_key, payment_key
from shoplib import catalogue, config
from shoplib.commit.replicated import WAIT_TIMEOUT_MS, marker
from shoplib.rules import ids
from shoplib.store import connections, partitions
from shoplib.store.lean import Arg, RedisPipe, Reply

# KEYS[1] the once key, ARGV[1] its value; ARGV[2] and ARGV[3] the group and id of the entry
# consumed ('' when none; its stream is KEYS[2]); then each write as <command> <key index, 0 for
# none> <argc> <args...>. A once key already there: only the ack.
SCRIPT = """
local function ack() if ARGV[2] ~= '' then redis.call('XACK', KEYS[2], ARGV[2], ARGV[3]) end end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then ack() return 0 end
local i = 4
while i <= #ARGV do
  local at, n = tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  if at > 0 then redis.call(ARGV[i], KEYS[at], unpack(ARGV, i + 3, i + 2 + n))
  else redis.call(ARGV[i], unpack(ARGV, i + 3, i + 2 + n)) end
  i = i + 3 + n
end
ack()
return 1
"""
SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()

# Sizes of the real stack's values, bytes (module docstring): the twin writes as much.
RESERVATION = b"r" * 64
ORDER = b"o" * 129
PAYMENT = b"p" * 101
NOTE = {types_pb2.NOTIFICATION_KIND_ORDER_RECEIVED: b"n" * 160, types_pb2.NOTIFICATION_KIND_PAYMENT_RECEIPT: b"n" * 176}
ENVELOPE = {catalogue.ORDER_EVENTS: b"e" * 408, catalogue.PAYMENT_EVENTS: b"e" * 396,
            catalogue.NOTIFICATION_EVENTS: b"e" * 462}
# The entries' type field, as the real ones (the lean consumers dispatch on it).
PLACED, PAID, SENT = b"shop.order.placed.v1", b"shop.payment.succeeded.v1", b"shop.notification.sent.v1"
TYPE_OF = {catalogue.ORDER_EVENTS: PLACED, catalogue.PAYMENT_EVENTS: PAID, catalogue.NOTIFICATION_EVENTS: SENT}


@dataclass(frozen=True)
class Consumed:
    """The stream entry a commit acknowledges."""

    stream: str
    group: str
    entry_id: str


@dataclass
class Commit:
    """KEYS and ARGV of SCRIPT, built write by write."""

    keys: list[str]
    args: list[Arg]

    @classmethod
    def once(cls, key: str, value: bytes, consumed: Consumed | None) -> Commit:
        target = [consumed.group, consumed.entry_id] if consumed else ["", ""]
        return cls([key, *([consumed.stream] if consumed else [])], [value, *target])

    def write(self, command: str, key: str | None, *args: Arg) -> Commit:
        if key is not None:
            self.keys.append(key)
        self.args += [command, len(self.keys) if key is not None else 0, len(args), *args]
        return self

    def event(self, stream: str, order_id: str) -> Commit:
        """The XADD of the event a hop emits, on its stream in the order's partition."""
        return self.write("XADD", partitions.stream(stream, partitions.partition_of_order(order_id)), "*",
                          "id", ids.uuid4_text(), "type", TYPE_OF[stream], "subject", order_id,
                          "envelope", ENVELOPE[stream])

    def command(self) -> tuple[Arg, ...]:
        return ("EVALSHA", SHA, len(self.keys), *self.keys, *self.args)


def new_order_id(idempotency_key: str) -> str:
    """In the key's partition, as order_svc.domain.new_order names it."""
    return partitions.order_id(partitions.partition_of(idempotency_key), ids.hex_id())


def _stored(commit: Commit, order_id: str) -> Commit:
    return commit.write("SET", order_key(order_id), ORDER).write("PUBLISH", None, UPDATES_CHANNEL,
                                                                   order_id.encode() + b" " + ORDER)


def placed(idempotency_key: str, order_id: str, mode: types_pb2.FlowMode.ValueType) -> Commit:
    commit = _stored(Commit.once(reservation_key(idempotency_key), RESERVATION, None), order_id)
    commit.write("ZADD", pending_key(mode, partitions.partition_of_order(order_id)), 0, order_id)
    return commit.event(catalogue.ORDER_EVENTS, order_id) if mode == types_pb2.FLOW_MODE_EVENTS else commit


def settled(order_id: str, mode: types_pb2.FlowMode.ValueType, consumed: Consumed | None = None) -> Commit:
    partition = partitions.partition_of_order(order_id)
    commit = _stored(Commit.once(partitions.key("order", partition, "settled", order_id), b"1", consumed), order_id)
    return commit.write("ZREM", pending_key(mode, partition), order_id)


def charged(order_id: str, consumed: Consumed | None = None) -> Commit:
    commit = Commit.once(payment_key(order_id), PAYMENT, consumed)
    commit.write("RPUSH", ledger_key(partitions.partition_of_order(order_id)), order_id)
    return commit.event(catalogue.PAYMENT_EVENTS, order_id) if consumed else commit


def notified(order_id: str, kind: types_pb2.NotificationKind.ValueType, consumed: Consumed | None = None) -> Commit:
    commit = Commit.once(notes_key(order_id, str(kind)), NOTE[kind], consumed)
    commit.write("RPUSH", notes_key(order_id), NOTE[kind])
    return commit.event(catalogue.NOTIFICATION_EVENTS, order_id) if consumed else commit


@dataclass
class _Queued:
    commands: Sequence[Sequence[Arg]]
    future: asyncio.Future[list[Reply]] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class Pipe(Protocol):
    """Where a batch of commands goes: RedisPipe on one Redis (bench.common.cluster_store on a cluster)."""

    def send_now(self, commands: Sequence[Sequence[Arg]]) -> asyncio.Future[list[Reply]] | None: ...

    async def execute(self, commands: Sequence[Sequence[Arg]]) -> list[Reply]: ...

    async def close(self) -> None: ...


class LeanStore:
    """Commits (and reads) on one lean connection: what is asked in one event-loop turn goes out
    in one write, as shoplib.commit.committers.PipelinedCommitter sends its commits. With
    REDIS_WAIT_REPLICAS > 0, each commit is then waited for as shoplib.commit.replicated does it.
    `pipe`: another transport for the batches (a cluster's)."""

    def __init__(self, client: aioredis.Redis, pipe: Pipe | None = None) -> None:
        pipe = pipe or RedisPipe.of(client)
        assert pipe is not None, "a plain Redis, or a pipe for the cluster"
        self._client, self._pipe = client, pipe
        self.replicas = config.optional("REDIS_WAIT_REPLICAS", 0, int)
        self._queue: list[_Queued] = []
        self._sending: set[asyncio.Future[list[Reply]]] = set()

    async def start(self) -> None:
        await self._client.script_load(SCRIPT)

    async def commit(self, commit: Commit) -> None:
        await self.call(commit.command())
        if self.replicas:
            acknowledged = await self.wait_replicas(commit.keys[0])
            if int(acknowledged) < self.replicas:
                raise RuntimeError(f"NOREPLICAS {acknowledged} of {self.replicas}")

    async def wait_replicas(self, key: str) -> Reply:
        """SET of the slot's marker and WAIT, in one batch on this store's connection: replicas acked."""
        return (await self._send([("SET", marker(key), "1"), ("WAIT", self.replicas, WAIT_TIMEOUT_MS)]))[1]

    async def call(self, command: Sequence[Arg]) -> Reply:
        [reply] = await self._send([command])
        if isinstance(reply, Exception):
            raise reply
        return reply

    def _send(self, commands: Sequence[Sequence[Arg]]) -> asyncio.Future[list[Reply]]:
        queued = _Queued(commands)
        self._queue.append(queued)
        if len(self._queue) == 1:
            asyncio.get_running_loop().call_soon(self._flush)
        return queued.future

    def _flush(self) -> None:
        batch, self._queue = self._queue, []
        commands = [command for queued in batch for command in queued.commands]
        sent = self._pipe.send_now(commands) or asyncio.ensure_future(self._pipe.execute(commands))
        self._sending.add(sent)
        sent.add_done_callback(functools.partial(self._replied, batch))

    def _replied(self, batch: list[_Queued], sent: asyncio.Future[list[Reply]]) -> None:
        self._sending.discard(sent)
        error = ConnectionError("lean connection closed") if sent.cancelled() else sent.exception()
        replies = iter(sent.result() if error is None else ())
        for queued in batch:
            if error is not None:
                queued.future.set_exception(error)
            else:
                queued.future.set_result([next(replies) for _ in queued.commands])

    async def aclose(self) -> None:
        await self._pipe.close()
        await self._client.aclose()


async def connect(url: str) -> LeanStore:
    """A LeanStore on the Redis at `url`, its script loaded."""
    store = LeanStore(connections.connect(url))
    await store.start()
    return store
