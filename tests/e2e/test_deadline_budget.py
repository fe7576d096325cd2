"""Every hop answers a caller whose deadline it cannot meet with UNAVAILABLE and RetryInfo before
that deadline (issue 19 case 2): real processes (shopctl.stack.Stack on a private Redis), a hung
dependency (a service or redis-server SIGSTOPped, Redis under CLIENT PAUSE), 20 PlaceOrder calls
at once with a 2 s deadline, quiet and with both cores kept busy by CPU burners.

The control runs the same case with `FAULTS=thin_answer_reserve` (each hop keeps 5 ms, as before
issue 19) and must see a DEADLINE_EXCEEDED. Run with -s to see the measured figures.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import redis
from shop.v1 import gateway_service_pb2, gateway_service_pb2_grpc, types_pb2

from shopctl.stack import Stack
from shoplib.calls import context
from tests.support import PAID_LINES, new_id, retry_delay_s

pytestmark = pytest.mark.e2e

CALLS = 20
DEADLINE_S = 2.0
# What every answer must leave of the caller's deadline. The reserve answers with 0.47 s or more to
# spare on a loaded 2-core host (measured: last answers 1.31-1.53 s of 2.0); with 5 ms per hop the
# order service's own cut-off lies 20 ms before the deadline, so its answers land inside this.
MARGIN_S = 0.1
# Two burners: one per core of the 2-core hosts this runs on (more cores: still a loaded host).
BURNERS = 2
# Each burner ends by itself after this long, whatever becomes of the test that started it.
BURN_BOUND_S = 90
BURN = f"import time\nend = time.monotonic() + {BURN_BOUND_S}\nwhile time.monotonic() < end: pass\n"
# How long a CLIENT PAUSE lasts: longer than a call's whole deadline.
PAUSE_MS = 3 * int(DEADLINE_S * 1000)
# What a stack waits for its services to be SERVING again after a hung Redis is resumed.
RECOVER_S = 60.0


@dataclass(frozen=True)
class Outcome:
    code: grpc.StatusCode
    elapsed_s: float
    retry_s: float | None
    details: str


@contextmanager
def cpu_burners() -> Iterator[None]:
    """Both cores kept busy by other processes, each in its own process group, ended afterwards."""
    burners = [subprocess.Popen([sys.executable, "-c", BURN], start_new_session=True) for _ in range(BURNERS)]
    try:
        time.sleep(0.5)  # let the scheduler see them as the hogs they are
        yield
    finally:
        for burner in burners:
            os.killpg(burner.pid, signal.SIGKILL)
            burner.wait()


@contextmanager
def stopped(pid: int) -> Iterator[None]:
    """The process hung (SIGSTOP) while inside; resumed (SIGCONT) afterwards."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def _request(mode: types_pb2.FlowMode.ValueType) -> gateway_service_pb2.PlaceOrderRequest:
    return gateway_service_pb2.PlaceOrderRequest(idempotency_key=new_id("key"), customer_id=new_id("cust"),
                                                 lines=PAID_LINES, mode=mode)


async def _place(stub: gateway_service_pb2_grpc.GatewayServiceStub, mode: types_pb2.FlowMode.ValueType) -> Outcome:
    started = time.monotonic()
    try:
        await stub.PlaceOrder(_request(mode), timeout=DEADLINE_S)
    except grpc.aio.AioRpcError as exc:
        elapsed = time.monotonic() - started
        try:
            retry: float | None = retry_delay_s(exc)
        except AssertionError:
            retry = None
        return Outcome(exc.code(), elapsed, retry, exc.details() or "")
    return Outcome(grpc.StatusCode.OK, time.monotonic() - started, None, "")


def place_at_once(address: str, mode: types_pb2.FlowMode.ValueType) -> list[Outcome]:
    """CALLS PlaceOrder calls at once from one Python client, each with a DEADLINE_S deadline."""
    async def run() -> list[Outcome]:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = gateway_service_pb2_grpc.GatewayServiceStub(channel)
            return list(await asyncio.gather(*[_place(stub, mode) for _ in range(CALLS)]))

    return asyncio.run(run())


def order_hop_cut_s() -> float:
    """When the order service (the second hop) gives up on its dependency, from the client's send:
    the gateway passes on T - 2R of the client's T, the order service gives its call T' - 2R'."""
    budget = DEADLINE_S
    for _ in ("gateway", "order"):
        budget -= 2 * context.answer_reserve(budget)
    return budget


def report(case: str, outcomes: list[Outcome]) -> None:
    """The codes, and the answer cost measured: from the order service's cut-off to the client."""
    cost_ms = sorted((o.elapsed_s - order_hop_cut_s()) * 1000 for o in outcomes)
    print(f"\n{case}: {dict(Counter(o.code.name for o in outcomes))}; answer cost after the order hop's "
          f"cut-off: median {statistics.median(cost_ms):.0f} ms, max {cost_ms[-1]:.0f} ms "
          f"(last answer {max(o.elapsed_s for o in outcomes):.3f} s of a {DEADLINE_S} s deadline)")


def assert_all_unavailable_in_time(case: str, outcomes: list[Outcome]) -> None:
    report(case, outcomes)
    codes = Counter(o.code.name for o in outcomes)
    assert codes == {"UNAVAILABLE": CALLS}, (codes, {o.details for o in outcomes})
    assert all(o.retry_s is not None and o.retry_s > 0 for o in outcomes), "an UNAVAILABLE without RetryInfo"
    # UNAVAILABLE itself says the answer beat the deadline (else the client's own timer ends the
    # call DEADLINE_EXCEEDED); the client's clock says so too, with a margin left.
    assert max(o.elapsed_s for o in outcomes) < DEADLINE_S - MARGIN_S


def _stack(log_dir: Path, env: dict[str, str] | None = None) -> Stack:
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("REDIS_URL", raising=False)  # a private Redis: this module hangs it
        return Stack(log_dir=log_dir, env=env or {})


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with _stack(Path(tmp_path_factory.mktemp("deadline-logs"))) as running:
        yield running


def _redis_pid(stack: Stack) -> int:
    assert stack.redis is not None and stack.redis.process is not None
    return stack.redis.process.pid


def _recovered(stack: Stack) -> None:
    stack.wait_serving(("notification", "payment", "order", "gateway"), timeout=RECOVER_S)


@pytest.mark.parametrize("loaded", [False, True], ids=["quiet", "both-cores-busy"])
def test_with_payment_hung_every_caller_hears_unavailable_with_retry_info_before_its_deadline(
        stack: Stack, loaded: bool) -> None:
    """The case as written: payment SIGSTOPped, 20 sync PlaceOrder with a 2 s deadline."""
    with cpu_burners() if loaded else _nothing(), stopped(stack.processes["payment"].pid):
        outcomes = place_at_once(stack.address("gateway"), types_pb2.FLOW_MODE_SYNC)
    assert_all_unavailable_in_time(f"payment SIGSTOP, sync, {'loaded' if loaded else 'quiet'}", outcomes)
    assert all("payment" in o.details for o in outcomes), {o.details for o in outcomes}


def test_with_notification_hung_callers_are_answered_in_time_too(stack: Stack) -> None:
    """Notification hung (the order service's first call, "order received", waits on it); under load."""
    with cpu_burners(), stopped(stack.processes["notification"].pid):
        outcomes = place_at_once(stack.address("gateway"), types_pb2.FLOW_MODE_SYNC)
    assert_all_unavailable_in_time("notification SIGSTOP, sync, loaded", outcomes)


@pytest.mark.parametrize("mode", [types_pb2.FLOW_MODE_SYNC, types_pb2.FLOW_MODE_EVENTS], ids=["sync", "events"])
def test_with_redis_hung_every_caller_hears_unavailable_before_its_deadline(
        stack: Stack, mode: types_pb2.FlowMode.ValueType) -> None:
    """redis-server SIGSTOPped: every store call of the order service hangs; under load."""
    with cpu_burners(), stopped(_redis_pid(stack)):
        outcomes = place_at_once(stack.address("gateway"), mode)
    _recovered(stack)
    assert_all_unavailable_in_time(f"redis SIGSTOP, {types_pb2.FlowMode.Name(mode)}, loaded", outcomes)


def test_with_redis_paused_by_client_pause_every_caller_hears_unavailable_before_its_deadline(stack: Stack) -> None:
    """CLIENT PAUSE ALL (what a failover or an operator does): Redis holds every command; under load."""
    assert stack.redis is not None
    client = redis.Redis(port=stack.redis.port)
    try:
        with cpu_burners():
            client.execute_command("CLIENT", "PAUSE", PAUSE_MS, "ALL")
            try:
                outcomes = place_at_once(stack.address("gateway"), types_pb2.FLOW_MODE_EVENTS)
            finally:
                client.execute_command("CLIENT", "UNPAUSE")
    finally:
        client.close()
    _recovered(stack)
    assert_all_unavailable_in_time("redis CLIENT PAUSE, events, loaded", outcomes)


def test_control_with_the_old_5_ms_per_hop_callers_are_answered_past_their_deadline(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    """The control: FAULTS=thin_answer_reserve, same case under load; the protection is what
    makes the difference, so this run must show callers answered past their deadline."""
    with _stack(Path(tmp_path_factory.mktemp("deadline-control")), {"FAULTS": "thin_answer_reserve"}) as thin:
        with cpu_burners(), stopped(thin.processes["payment"].pid):
            outcomes = place_at_once(thin.address("gateway"), types_pb2.FLOW_MODE_SYNC)
    report("control (5 ms per hop), payment SIGSTOP, sync, loaded", outcomes)
    # Caught by what the test asserts: a DEADLINE_EXCEEDED, or an answer the client's clock saw
    # within MARGIN_S of its deadline or past it. Whether a 5 ms reserve misses the deadline itself
    # is a race with the host's load (measured: 10 of 20 DEADLINE_EXCEEDED, the last answer at
    # 2.006 s; 20 UNAVAILABLE, the last at 2.002 s), but it always answers at its very end.
    late = [o for o in outcomes if o.code is grpc.StatusCode.DEADLINE_EXCEEDED or o.elapsed_s >= DEADLINE_S - MARGIN_S]
    assert late, [(o.code.name, round(o.elapsed_s, 3)) for o in outcomes]


@contextmanager
def _nothing() -> Iterator[None]:
    yield
