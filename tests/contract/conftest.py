"""One in-process set of services for the contract tests of this package, and stubs to call them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest_asyncio
from shop.v1 import gateway_service_pb2_grpc, notification_service_pb2_grpc, payment_service_pb2_grpc

from tests.contract.inprocess import Services, running_services


@pytest_asyncio.fixture(scope="package")
async def services(redis_url: str) -> AsyncIterator[Services]:
    async with running_services(redis_url) as running:
        yield running


@pytest_asyncio.fixture(scope="package")
async def gateway_stub(services: Services) -> AsyncIterator[gateway_service_pb2_grpc.GatewayServiceStub]:
    async with grpc.aio.insecure_channel(services.address("gateway")) as channel:
        yield gateway_service_pb2_grpc.GatewayServiceStub(channel)


@pytest_asyncio.fixture(scope="package")
async def payment_stub(services: Services) -> AsyncIterator[payment_service_pb2_grpc.PaymentServiceStub]:
    async with grpc.aio.insecure_channel(services.address("payment")) as channel:
        yield payment_service_pb2_grpc.PaymentServiceStub(channel)


@pytest_asyncio.fixture(scope="package")
async def notification_stub(services: Services
                            ) -> AsyncIterator[notification_service_pb2_grpc.NotificationServiceStub]:
    async with grpc.aio.insecure_channel(services.address("notification")) as channel:
        yield notification_service_pb2_grpc.NotificationServiceStub(channel)
