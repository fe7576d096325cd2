"""The bare baseline: servicers over the real stubs that do only what a hop must (forward, or one
XADD), and the body of a bare server process. Only the calls the benches make are served; the
others answer UNIMPLEMENTED."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, NoReturn

import grpc
from shop.v1 import gateway_service_pb2 as gw
from shop.v1 import gateway_service_pb2_grpc as gw_grpc
from shop.v1 import order_service_pb2 as od
from shop.v1 import order_service_pb2_grpc as od_grpc

from bench.common.load import CALL_TIMEOUT_S

MAX_LIFETIME_S = 900.0  # a bare server left behind by a crashed bench exits on its own
STOP_GRACE_S = 0.5  # in-flight calls of a stopping bare server get this long to finish

Context = grpc.aio.ServicerContext[Any, Any]
Closer = Callable[[], Awaitable[object]]


async def unimplemented(context: Context) -> NoReturn:
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not part of the bare baseline")


class BareGateway(gw_grpc.GatewayServiceServicer):
    """PlaceOrder forwarded to the order service as CreateOrder, the order handed back."""

    def __init__(self, order: grpc.aio.Channel) -> None:
        self._orders: od_grpc.OrderServiceAsyncStub = od_grpc.OrderServiceStub(order)

    async def PlaceOrder(self, request: gw.PlaceOrderRequest, context: Context) -> gw.PlaceOrderResponse:
        reply = await self._orders.CreateOrder(od.CreateOrderRequest(
            idempotency_key=request.idempotency_key, customer_id=request.customer_id, lines=request.lines,
            mode=request.mode), timeout=CALL_TIMEOUT_S)
        return gw.PlaceOrderResponse(order=reply.order)

    async def GetOrder(self, request: gw.GetOrderRequest, context: Context) -> gw.GetOrderResponse:
        await unimplemented(context)

    async def WatchOrder(self, request: gw.WatchOrderRequest, context: Context
                         ) -> AsyncIterator[gw.WatchOrderResponse]:
        await unimplemented(context)
        yield gw.WatchOrderResponse()  # never reached; makes this a stream handler like the real one


class BareOrderReads(od_grpc.OrderServiceServicer):
    """The order service's reads, which no bench calls; each bench's bare order adds CreateOrder."""

    async def FetchOrder(self, request: od.FetchOrderRequest, context: Context) -> od.FetchOrderResponse:
        await unimplemented(context)

    async def FollowOrder(self, request: od.FollowOrderRequest, context: Context
                          ) -> AsyncIterator[od.FollowOrderResponse]:
        await unimplemented(context)
        yield od.FollowOrderResponse()  # never reached; makes this a stream handler like the real one


Register = Callable[[grpc.aio.Server], Awaitable[Sequence[Closer]]]


async def serve(register: Register, port: int) -> None:
    """Body of a `--bare-server` process: `register` adds the servicer (and says what to close
    after; a durable twin connects to Redis first), then serve until SIGTERM or SIGINT (or
    MAX_LIFETIME_S)."""
    server = grpc.aio.server()
    closers = await register(server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), MAX_LIFETIME_S)
    await server.stop(STOP_GRACE_S)
    for close in closers:
        await close()
