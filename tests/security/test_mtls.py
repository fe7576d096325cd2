"""mTLS between services (SECURE=1): the payment and notification services in this process, each
with its own certificate; callers present what an attacker could, and only the right identity
for the method gets through. A refused handshake reads as such in our error mapping, not as
"service down"."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
import trustme
from grpc_health.v1 import health_pb2, health_pb2_grpc
from shop.v1 import payment_service_pb2, payment_service_pb2_grpc

from shoplib import errors
from shoplib.calls import outbound
from shoplib.process.service import Running
from shoplib.rules import money
from shoplib.security import handshake
from tests.contract.inprocess import address, start_notification, start_payment
from tests.events.helpers import new_id
from tests.security.certs import write_leaf

TIMEOUT_S = 5.0


@pytest_asyncio.fixture(scope="module")
async def payment(certs_dir: Path, redis_url: str) -> AsyncIterator[str]:
    """A secure payment service (and the notification service it sends receipts to)."""
    notification: Running = await start_notification(redis_url)
    payment: Running = await start_payment(redis_url, address(notification.port))
    try:
        yield address(payment.port)
    finally:
        await payment.stop(grace=0.5)
        await notification.stop(grace=0.5)


def credentials(certs_dir: Path, cert: Path | None = None, key: Path | None = None) -> grpc.ChannelCredentials:
    ca = (certs_dir / "ca.pem").read_bytes()
    if cert is None or key is None:
        return grpc.ssl_channel_credentials(root_certificates=ca)
    return grpc.ssl_channel_credentials(ca, key.read_bytes(), cert.read_bytes())


def as_identity(certs_dir: Path, identity: str) -> grpc.ChannelCredentials:
    return credentials(certs_dir, certs_dir / f"{identity}.pem", certs_dir / f"{identity}-key.pem")


async def charge(target: str, creds: grpc.ChannelCredentials) -> payment_service_pb2.ChargeResponse:
    request = payment_service_pb2.ChargeRequest(order_id=new_id("ord"), customer_id=new_id("cust"),
                                                amount=money.money("EUR", 1_000))
    async with grpc.aio.secure_channel(target, creds, options=[("grpc.ssl_target_name_override", "payment")]) as ch:
        return await payment_service_pb2_grpc.PaymentServiceStub(ch).Charge(request, timeout=TIMEOUT_S)


async def refused(target: str, creds: grpc.ChannelCredentials) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await charge(target, creds)
    return caught.value


async def test_the_order_identity_may_charge(payment: str, certs_dir: Path) -> None:
    reply = await charge(payment, as_identity(certs_dir, "order"))
    assert reply.payment.order_id.startswith("ord")


async def test_a_caller_without_a_certificate_is_refused_in_the_handshake(payment: str, certs_dir: Path) -> None:
    error = await refused(payment, credentials(certs_dir))
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    assert handshake.refused("payment", error) is not None, error.details()


async def test_a_certificate_from_another_ca_is_refused(payment: str, certs_dir: Path, tmp_path: Path) -> None:
    cert, key = write_leaf(tmp_path, "order", trustme.CA(), "order")  # the right name, the wrong issuer
    error = await refused(payment, credentials(certs_dir, cert, key))
    assert handshake.refused("payment", error) is not None, error.details()


async def test_an_expired_certificate_is_refused(payment: str, certs_dir: Path, ca: trustme.CA,
                                                 tmp_path: Path) -> None:
    cert, key = write_leaf(tmp_path, "order", ca, "order", expired=True)  # our CA, the right name, expired
    error = await refused(payment, credentials(certs_dir, cert, key))
    assert handshake.refused("payment", error) is not None, error.details()


@pytest.mark.parametrize("identity", ["client", "payment", "notification", "gateway", "ops"])
async def test_a_valid_certificate_with_the_wrong_identity_may_not_charge(payment: str, certs_dir: Path,
                                                                          identity: str) -> None:
    error = await refused(payment, as_identity(certs_dir, identity))
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert error.details() == f"caller {identity!r} may not call /shop.v1.PaymentService/Charge"


async def test_any_identity_of_the_ca_may_probe_health(payment: str, certs_dir: Path) -> None:
    async with grpc.aio.secure_channel(payment, as_identity(certs_dir, "ops")) as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT_S)
    assert reply.status in (health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING)


async def test_our_client_reports_a_refused_handshake_as_such_not_as_service_down(
        payment: str, certs_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = write_leaf(tmp_path, "order", trustme.CA(), "order")
    monkeypatch.setenv("TLS_CERT_FILE", str(cert))
    monkeypatch.setenv("TLS_KEY_FILE", str(key))
    async with outbound.channel(payment, "order", "payment") as channel:
        call = payment_service_pb2_grpc.PaymentServiceStub(channel).GetPayment(
            payment_service_pb2.GetPaymentRequest(order_id=new_id("ord")), timeout=TIMEOUT_S)
        with pytest.raises(errors.ServiceError) as caught:
            await outbound.invoke("payment", "shop.v1.PaymentService/GetPayment", call)
    assert caught.value.code == "INTERNAL", caught.value.message
    assert "TLS handshake with the payment service was refused" in caught.value.message


async def test_a_service_reached_at_the_wrong_address_is_refused_by_its_identity(payment: str) -> None:
    """Order means to call notification, but the address answers with payment's certificate:
    the channel pins the identity, so the call never reaches the wrong service."""
    async with outbound.channel(payment, "order", "notification") as channel:
        call = payment_service_pb2_grpc.PaymentServiceStub(channel).GetPayment(
            payment_service_pb2.GetPaymentRequest(order_id=new_id("ord")), timeout=TIMEOUT_S)
        with pytest.raises(errors.ServiceError) as caught:
            await outbound.invoke("notification", "shop.v1.PaymentService/GetPayment", call)
    assert caught.value.code == "INTERNAL"
    assert "TLS handshake with the notification service was refused" in caught.value.message
