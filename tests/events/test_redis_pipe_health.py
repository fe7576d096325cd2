"""The lean connection's health (shoplib.store.lean) against a real redis-server: TCP keepalive is
set on its socket; a connection dropped silently (a proxy that blackholes it) or killed by Redis
is replaced before its next use instead of costing the 2 s command timeout; and a service's stop
closes every lean connection it opened (counted with CLIENT LIST)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import pytest
import redis.asyncio as aioredis
import uvloop
from redis.exceptions import TimeoutError as RedisTimeoutError
from shop.v1 import gateway_service_pb2, gateway_service_pb2_grpc, types_pb2

from shopctl.local_redis.server import LocalRedis
from shoplib.store import connections, lean
from shoplib.store.connections import SOCKET_TIMEOUT_S
from shoplib.store.lean import Endpoint, RedisPipe
from tests.contract.inprocess import running_services
from tests.events.helpers import PAID_LINES, new_id

# Idle this long, the pipes under test are PINGed before use (the product's 10 s, made short).
IDLE_S = 0.2
READ_BYTES = 65536
# The slowest PING measured on this 2-core host at load average 13 took 155 ms (redis_pipe's
# HEALTH_CHECK_TIMEOUT_S): the margin for timers firing late; the check's own 0.5 s is above it.
SCHEDULING_MARGIN_S = 0.4
# Redis drops a closed client within one turn of its event loop (about a millisecond): ample margin.
CLOSE_SEEN_S = 1.0


@dataclass
class _Link:
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    silent: bool = False


class Blackhole:
    """A TCP proxy to Redis that can go silent on the connections it carries: bytes dropped both
    ways, no FIN, no RST (as a NAT or load balancer that forgot them). New connections pass."""

    def __init__(self, target_port: int) -> None:
        self._target, self._links = target_port, list[_Link]()
        self._server: asyncio.Server | None = None
        self._silent_from_start = False
        self.port = 0

    async def start(self) -> Blackhole:
        self._server = await asyncio.start_server(self._carry, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def silence(self, new_ones_too: bool = False) -> None:
        """Open connections go silent; with `new_ones_too`, so does every later one."""
        self._silent_from_start = new_ones_too
        for link in self._links:
            link.silent = True

    async def _carry(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target)
        link = _Link([writer, up_writer], silent=self._silent_from_start)
        self._links.append(link)
        await asyncio.gather(self._pump(reader, up_writer, link), self._pump(up_reader, writer, link))

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, link: _Link) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(READ_BYTES):
                if not link.silent:
                    sink.write(data)
                    await sink.drain()
        if not link.silent:
            sink.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in self._links:
            for writer in link.writers:
                writer.close()


@pytest.fixture
async def proxy(local_redis: LocalRedis) -> AsyncIterator[Blackhole]:
    blackhole = await Blackhole(local_redis.port).start()
    yield blackhole
    await blackhole.close()


@pytest.fixture
async def admin(local_redis: LocalRedis) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(local_redis.url)
    yield client
    await client.aclose()


@pytest.mark.parametrize("checked", [True, False], ids=["health-checked", "control-never-checked"])
async def test_a_silently_dropped_connection_is_replaced_before_use_not_after_the_command_timeout(
        proxy: Blackhole, checked: bool) -> None:
    pipe = RedisPipe(Endpoint("127.0.0.1", proxy.port), health_check_interval_s=IDLE_S if checked else None)
    try:
        assert await pipe.execute([("SET", "blackholed", "v")]) == [b"OK"]
        proxy.silence()
        await asyncio.sleep(2 * IDLE_S)
        started = time.monotonic()
        if checked:
            assert await pipe.execute([("GET", "blackholed")]) == [b"v"]
            # The PING's timeout (0.5 s) and a new connection, well before the command timeout.
            assert time.monotonic() - started < SOCKET_TIMEOUT_S
        else:  # the control: without the idle check the command waits out its whole timeout
            with pytest.raises(RedisTimeoutError):
                await pipe.execute([("GET", "blackholed")])
            assert time.monotonic() - started >= SOCKET_TIMEOUT_S - lean.TIMER_RESOLUTION_S
    finally:
        await pipe.close()


async def test_a_health_check_and_the_command_after_it_take_no_longer_than_the_command_timeout(
        proxy: Blackhole) -> None:
    """Redis unreachable on every connection (a hung host): the PING's wait comes out of the
    command's timeout, so an outage is still answered within SOCKET_TIMEOUT_S (plus the host's
    scheduling: SCHEDULING_MARGIN_S), not after PING timeout + command timeout."""
    pipe = RedisPipe(Endpoint("127.0.0.1", proxy.port), health_check_interval_s=IDLE_S)
    try:
        assert await pipe.execute([("PING",)]) == [b"PONG"]
        proxy.silence(new_ones_too=True)
        await asyncio.sleep(2 * IDLE_S)
        started = time.monotonic()
        with pytest.raises(RedisTimeoutError):
            await pipe.execute([("GET", "unreachable")])
        assert time.monotonic() - started < SOCKET_TIMEOUT_S + SCHEDULING_MARGIN_S
    finally:
        await pipe.close()


async def test_a_connection_killed_by_redis_is_replaced_before_its_next_use(local_redis: LocalRedis,
                                                                          admin: aioredis.Redis) -> None:
    pipe = RedisPipe(Endpoint("127.0.0.1", local_redis.port), health_check_interval_s=IDLE_S)
    try:
        [lean_id] = await pipe.execute([("CLIENT", "ID")])
        assert await admin.execute_command("CLIENT", "KILL", "ID", lean_id) == 1  # type: ignore[no-untyped-call]
        await asyncio.sleep(2 * IDLE_S)
        started = time.monotonic()
        [new_id_] = await pipe.execute([("CLIENT", "ID")])
        assert new_id_ != lean_id and time.monotonic() - started < SOCKET_TIMEOUT_S
    finally:
        await pipe.close()


def _keepalive(sock: socket.socket) -> dict[str, int]:
    found = {"SO_KEEPALIVE": sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)}
    for name in ("TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT"):
        found[name] = sock.getsockopt(socket.IPPROTO_TCP, getattr(socket, name))
    return found


@pytest.mark.skipif(not hasattr(socket, "TCP_KEEPIDLE"), reason="TCP_KEEPIDLE is Linux's (the services' host)")
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])  # the services run on uvloop, the tests on asyncio
def test_tcp_keepalive_is_set_on_the_lean_connections_socket(local_redis: LocalRedis, loop: str) -> None:
    async def options() -> dict[str, int]:
        pipe = RedisPipe(Endpoint("127.0.0.1", local_redis.port))
        try:
            await pipe.execute([("PING",)])
            assert pipe.tcp_socket is not None
            return _keepalive(pipe.tcp_socket)
        finally:
            await pipe.close()

    # A loop factory always: without one, asyncio.Runner sets the thread's event loop and unsets it
    # on exit, which the session's loop (and grpc.aio, which asks for it) would then lack.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop if loop == "uvloop" else asyncio.new_event_loop) as runner:
        assert runner.run(options()) == {
            "SO_KEEPALIVE": 1, "TCP_KEEPIDLE": connections.KEEPALIVE_IDLE_S,
            "TCP_KEEPINTVL": connections.KEEPALIVE_INTERVAL_S, "TCP_KEEPCNT": connections.KEEPALIVE_PROBES}


@pytest.mark.skipif(not hasattr(socket, "TCP_KEEPIDLE"), reason="TCP_KEEPIDLE is Linux's (the services' host)")
@pytest.mark.parametrize("blocking", [False, True], ids=["pool", "blocking-reads"])
async def test_tcp_keepalive_is_set_on_redis_py_connections_too(local_redis: LocalRedis, blocking: bool) -> None:
    client = connections.blocking_client(local_redis.url, 1.0) if blocking else connections.connect(local_redis.url)
    try:
        connection = await client.connection_pool.get_connection()
        # redis-py keeps the stream writer private; its transport's socket is the connection's
        sock = connection._writer.transport.get_extra_info("socket")  # type: ignore[union-attr]
        assert _keepalive(sock) == {
            "SO_KEEPALIVE": 1, "TCP_KEEPIDLE": connections.KEEPALIVE_IDLE_S,
            "TCP_KEEPINTVL": connections.KEEPALIVE_INTERVAL_S, "TCP_KEEPCNT": connections.KEEPALIVE_PROBES}
        await client.connection_pool.release(connection)
    finally:
        await client.aclose()


async def _clients_besides(admin: aioredis.Redis) -> int:
    own = await admin.client_id()
    return sum(1 for c in await admin.client_list() if int(c["id"]) != own)


async def _place_both_modes(gateway_address: str) -> None:
    async with grpc.aio.insecure_channel(gateway_address) as channel:
        stub = gateway_service_pb2_grpc.GatewayServiceStub(channel)
        for mode in (types_pb2.FLOW_MODE_SYNC, types_pb2.FLOW_MODE_EVENTS):
            await stub.PlaceOrder(gateway_service_pb2.PlaceOrderRequest(
                idempotency_key=new_id("key"), customer_id=new_id("cust"), lines=PAID_LINES, mode=mode), timeout=5)


@pytest.mark.parametrize("closing", [True, False], ids=["closed-on-stop", "control-not-closed"])
async def test_stopping_the_services_closes_every_lean_connection(local_redis: LocalRedis, admin: aioredis.Redis,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  closing: bool) -> None:
    async def leave_open(client: aioredis.Redis) -> None:
        return None

    if not closing:  # the control: stop as before, the lean connections left to the process's exit
        monkeypatch.setattr(lean, "close_all", leave_open)
    async with running_services(local_redis.url) as services:
        await _place_both_modes(services.address("gateway"))
        assert await _clients_besides(admin) > 0
    # The services stopped; this process (and any socket they left open) lives on. Redis notices
    # a closed connection in its next event loop turn: looked at until CLOSE_SEEN_S.
    until = time.monotonic() + CLOSE_SEEN_S
    while (left := await _clients_besides(admin)) and time.monotonic() < until:
        await asyncio.sleep(0.05)
    assert (left == 0) if closing else (left > 0), left
