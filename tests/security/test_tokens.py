"""Bearer tokens at the gateway (SECURE=1), attacked as a caller would: each bad token gets
UNAUTHENTICATED with its reason, a good token for another customer PERMISSION_DENIED, another
customer's order NOT_FOUND (as if it did not exist), and no refused call stores anything."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
import redis
from shop.v1 import gateway_service_pb2 as gw
from shop.v1 import gateway_service_pb2_grpc as gw_grpc
from shop.v1 import types_pb2

from shopctl import tokens
from shopctl.load import PAID_LINE
from shoplib.security import auth, files
from tests.contract.inprocess import Services, running_services
from tests.events.helpers import new_id
from tests.security.certs import new_key, private_pem

TIMEOUT_S = 10.0


@pytest_asyncio.fixture(scope="module")
async def services(certs_dir: Path, redis_url: str) -> AsyncIterator[Services]:
    async with running_services(redis_url) as running:
        yield running


@pytest_asyncio.fixture(scope="module")
async def gateway(services: Services, certs_dir: Path) -> AsyncIterator[gw_grpc.GatewayServiceAsyncStub]:
    """An outside caller: TLS to the gateway (its certificate checked against our CA), no client certificate."""
    creds = grpc.ssl_channel_credentials(root_certificates=(certs_dir / files.CA).read_bytes())
    async with grpc.aio.secure_channel(services.address("gateway"), creds) as channel:
        yield gw_grpc.GatewayServiceStub(channel)


def signing_key(certs_dir: Path) -> bytes:
    return (certs_dir / files.JWT_SIGNING_KEY).read_bytes()


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


def unsigned(subject: str) -> str:
    """An `alg: none` token: a valid-looking payload and no signature."""
    def part(value: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()
    claims = {"sub": subject, "iss": auth.ISSUER, "aud": auth.AUDIENCE, "exp": 4_000_000_000}
    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def order_for(customer: str, key: str) -> gw.PlaceOrderRequest:
    return gw.PlaceOrderRequest(idempotency_key=key, customer_id=customer, lines=[PAID_LINE],
                                mode=types_pb2.FLOW_MODE_SYNC)


def stored(redis_client: redis.Redis, key: str) -> list[bytes]:
    return list(redis_client.scan_iter(match=f"*{key}*"))


def attacks(key: bytes) -> dict[str, tuple[tuple[tuple[str, str], ...], str]]:
    """name -> (metadata, the reason the gateway must give)."""
    alice, missing = "alice", "missing bearer token (authorization: Bearer <JWT>)"
    return {
        "missing": ((), missing),
        "not bearer": ((("authorization", "Basic YWxpY2U6cHc="),), missing),
        "malformed": (bearer("not.a.jwt"), "malformed token"),
        "signed by another key": (bearer(tokens.mint(private_pem(new_key()), alice)), "bad signature"),
        "expired": (bearer(tokens.mint(key, alice, ttl_s=-3600)), "token expired"),
        "wrong audience": (bearer(tokens.mint(key, alice, aud="another-api")), "wrong audience"),
        "wrong issuer": (bearer(tokens.mint(key, alice, iss="https://evil.example")), "wrong issuer"),
        "alg none": (bearer(unsigned(alice)), "signing algorithm not accepted"),
        "no subject": (bearer(tokens.mint(key, alice, sub=None)), "a required claim is missing"),
    }


ATTACKS = ("missing", "not bearer", "malformed", "signed by another key", "expired", "wrong audience",
           "wrong issuer", "alg none", "no subject")


@pytest.mark.parametrize("attack", ATTACKS)
async def test_a_bad_token_is_unauthenticated_with_its_reason_and_nothing_is_stored(
        gateway: gw_grpc.GatewayServiceAsyncStub, certs_dir: Path, redis_client: redis.Redis, attack: str) -> None:
    metadata, reason = attacks(signing_key(certs_dir))[attack]
    key = new_id("attack")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gateway.PlaceOrder(order_for("alice", key), metadata=metadata, timeout=TIMEOUT_S)
    assert (caught.value.code(), caught.value.details()) == (grpc.StatusCode.UNAUTHENTICATED, reason)
    assert stored(redis_client, key) == []


async def test_a_valid_token_places_its_own_customers_order(gateway: gw_grpc.GatewayServiceAsyncStub,
                                                            certs_dir: Path) -> None:
    reply = await gateway.PlaceOrder(order_for("alice", new_id("k")), timeout=TIMEOUT_S,
                                     metadata=bearer(tokens.mint(signing_key(certs_dir), "alice")))
    assert reply.order.status == types_pb2.ORDER_STATUS_PAID


async def test_an_order_for_another_customer_is_permission_denied_and_not_stored(
        gateway: gw_grpc.GatewayServiceAsyncStub, certs_dir: Path, redis_client: redis.Redis) -> None:
    key = new_id("for-bob")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await gateway.PlaceOrder(order_for("bob", key), timeout=TIMEOUT_S,
                                 metadata=bearer(tokens.mint(signing_key(certs_dir), "alice")))
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert stored(redis_client, key) == []


async def test_an_operator_may_place_an_order_for_any_customer(gateway: gw_grpc.GatewayServiceAsyncStub,
                                                               certs_dir: Path) -> None:
    operator = tokens.mint(signing_key(certs_dir), "support-1", scope=auth.OPERATOR_SCOPE)
    reply = await gateway.PlaceOrder(order_for("bob", new_id("k")), timeout=TIMEOUT_S, metadata=bearer(operator))
    assert reply.order.customer_id == "bob"


async def test_another_customers_order_is_not_found_exactly_like_a_missing_one(
        gateway: gw_grpc.GatewayServiceAsyncStub, certs_dir: Path) -> None:
    key = signing_key(certs_dir)
    placed = await gateway.PlaceOrder(order_for("bob", new_id("k")), timeout=TIMEOUT_S,
                                      metadata=bearer(tokens.mint(key, "bob")))
    alice = bearer(tokens.mint(key, "alice"))
    order_id = placed.order.order_id
    missing = order_id[:-4] + "0000"  # same shape and partition, never placed
    answers = []
    for wanted in (order_id, missing):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await gateway.GetOrder(gw.GetOrderRequest(order_id=wanted), metadata=alice, timeout=TIMEOUT_S)
        answers.append((caught.value.code(), caught.value.details().replace(wanted, "ID")))
    assert answers[0] == answers[1]
    assert answers[0][0] is grpc.StatusCode.NOT_FOUND


async def test_watching_another_customers_order_is_not_found(gateway: gw_grpc.GatewayServiceAsyncStub,
                                                             certs_dir: Path) -> None:
    key = signing_key(certs_dir)
    placed = await gateway.PlaceOrder(order_for("bob", new_id("k")), timeout=TIMEOUT_S,
                                      metadata=bearer(tokens.mint(key, "bob")))
    call = gateway.WatchOrder(gw.WatchOrderRequest(order_id=placed.order.order_id), timeout=TIMEOUT_S,
                              metadata=bearer(tokens.mint(key, "alice")))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in call:
            pass
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
