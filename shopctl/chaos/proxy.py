"""A GatewayService in front of the real gateway that loses answers: for some PlaceOrder calls it
forwards the request, lets the gateway act, then tells the caller UNAVAILABLE instead of the answer
(what a connection lost on the way back looks like)."""

from __future__ import annotations

import random
from collections import defaultdict

import grpc
from shop.v1 import gateway_service_pb2 as pb
from shop.v1 import gateway_service_pb2_grpc as gw_grpc

# Budget of a forwarded call when the caller set no deadline.
DEFAULT_TIMEOUT_S = 10.0


class DroppingProxy(gw_grpc.GatewayServiceServicer):
    def __init__(self, upstream: gw_grpc.GatewayServiceAsyncStub, rng: random.Random, drop_rate: float) -> None:
        self._upstream, self._rng, self._drop_rate = upstream, rng, drop_rate
        self.dropped: dict[str, list[str]] = defaultdict(list)  # idempotency key -> order ids it hid

    async def PlaceOrder(self, request: pb.PlaceOrderRequest,
                         context: grpc.aio.ServicerContext[pb.PlaceOrderRequest, pb.PlaceOrderResponse]
                         ) -> pb.PlaceOrderResponse:
        try:
            reply = await self._upstream.PlaceOrder(request, timeout=context.time_remaining() or DEFAULT_TIMEOUT_S)
        except grpc.aio.AioRpcError as exc:
            await context.abort(exc.code(), exc.details() or "")
        if self._rng.random() < self._drop_rate:
            self.dropped[request.idempotency_key].append(reply.order.order_id)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "response dropped by the chaos proxy")
        return reply


class Proxy:
    """`async with Proxy(upstream_address, rng, rate) as proxy:` serves on proxy.address."""

    def __init__(self, upstream: str, rng: random.Random, drop_rate: float) -> None:
        self._upstream_address = upstream
        self._rng, self._drop_rate = rng, drop_rate

    async def __aenter__(self) -> Proxy:
        self._channel = grpc.aio.insecure_channel(self._upstream_address)
        # The generated servicer is abstract only in its stub: GetOrder and WatchOrder (not proxied)
        # answer UNIMPLEMENTED from the base class at run time.
        self.servicer = DroppingProxy(  # type: ignore[abstract]
            gw_grpc.GatewayServiceStub(self._channel), self._rng, self._drop_rate)
        self._server = grpc.aio.server()
        gw_grpc.add_GatewayServiceServicer_to_server(self.servicer, self._server)
        self.address = f"127.0.0.1:{self._server.add_insecure_port('127.0.0.1:0')}"
        await self._server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._server.stop(0)
        await self._channel.close()
