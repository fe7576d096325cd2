"""Issue 19 case 4 as written, on the whole stack as real processes under SECURE=1: the order service
starts with a short-lived client certificate, it is renewed on disk, the old one expires, payment
is restarted: sync orders are PAID with at most one retry, no restart of the order service. The
expiry warning is in the order service's log and metric before that. And the gateway follows a
rotated token key. (The controls, channels that read their files once, are in test_renewal.py.)"""

from __future__ import annotations

import shutil
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from shop.v1 import gateway_service_pb2 as gw
from shop.v1 import gateway_service_pb2_grpc as gw_grpc
from shop.v1 import types_pb2

from shopctl import tokens
from shopctl.load import PAID_LINE
from shopctl.stack import Stack
from shoplib.security import auth, files
from tests.events.helpers import FAST_ENV, new_id, wait_until
from tests.security.certs import new_key, private_pem, write_leaf

pytestmark = pytest.mark.e2e
# The order service's first certificate must outlast the stack's start and one order: measured
# 9 s for both on the busy 2-core host; this is three times that, and the wait the test pays.
ORDER_CERT_LIFETIME_S = 30.0
TIMEOUT_S = 15.0


@dataclass
class Renewing:
    stack: Stack
    certs: Path
    ca: trustme.CA
    expires: float  # epoch s: the order service's first certificate's notAfter

    def channel(self) -> grpc.Channel:
        ca, key, cert = (self.certs / name for name in (files.CA, "client-key.pem", "client.pem"))
        credentials = grpc.ssl_channel_credentials(ca.read_bytes(), key.read_bytes(), cert.read_bytes())
        return grpc.secure_channel(self.stack.address("gateway"), credentials)

    def token(self) -> str:
        return tokens.mint((self.certs / files.JWT_SIGNING_KEY).read_bytes(), "alice")

    def log(self, name: str) -> str:
        return self.stack.log_path(name).read_text()


@pytest.fixture(scope="module")
def renewing(certs_dir: Path, ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Renewing]:
    directory = tmp_path_factory.mktemp("renewing") / "certs"
    shutil.copytree(certs_dir, directory)
    write_leaf(directory, "order", ca, "order", lifetime_s=ORDER_CERT_LIFETIME_S)
    expires = time.time() + ORDER_CERT_LIFETIME_S
    env = {**FAST_ENV, "FAULTS": "", "CERTS_DIR": str(directory), "CREDENTIAL_EXPIRY_WARN_S": "3600"}
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("REDIS_URL", raising=False)  # the stack starts its own Redis, with the ACL users
        stack = Stack(free_ports=True, metrics=True, log_dir=tmp_path_factory.mktemp("renewing-logs"), env=env)
    with stack:
        yield Renewing(stack, directory, ca, expires)


def place(renewing: Renewing, token: str) -> tuple[int, list[str]]:
    """A sync PlaceOrder, retried once with the same key on failure: (final status, failures met)."""
    request = gw.PlaceOrderRequest(idempotency_key=new_id("k"), customer_id="alice", lines=[PAID_LINE],
                                   mode=types_pb2.FLOW_MODE_SYNC)
    failed: list[str] = []
    with renewing.channel() as channel:
        for _ in range(2):
            try:
                reply = gw_grpc.GatewayServiceStub(channel).PlaceOrder(
                    request, metadata=(("authorization", f"Bearer {token}"),), timeout=TIMEOUT_S)
                return reply.order.status, failed
            except grpc.RpcError as exc:
                failed.append(f"{exc.code().name}: {exc.details()}")  # type: ignore[attr-defined]
                time.sleep(1.0)  # a client's backoff
    return types_pb2.ORDER_STATUS_UNSPECIFIED, failed


def expiry_metric(renewing: Renewing, credential: str) -> float | None:
    with urllib.request.urlopen(renewing.stack.metrics_url("order"), timeout=TIMEOUT_S) as reply:
        text = reply.read().decode()
    prefix = f'shop_credential_expiry_seconds{{credential="{credential}"}} '
    return next((float(line[len(prefix):]) for line in text.splitlines() if line.startswith(prefix)), None)


def test_orders_are_paid_after_the_client_certificate_was_renewed_and_payment_restarted(renewing: Renewing) -> None:
    assert time.time() < renewing.expires, "the stack took longer to start than ORDER_CERT_LIFETIME_S"
    token = renewing.token()
    assert place(renewing, token) == (types_pb2.ORDER_STATUS_PAID, [])  # order -> payment with the short-lived one
    left = expiry_metric(renewing, "order.cert")
    assert left is not None and 0 < left <= ORDER_CERT_LIFETIME_S
    assert '"credential":"order.cert"' in renewing.log("order") and "credential.expires_soon" in renewing.log("order")

    write_leaf(renewing.certs, "order", renewing.ca, "order")  # renewed on disk: same CA, a year
    time.sleep(max(0.0, renewing.expires - time.time()) + 1.0)  # the old one has expired
    renewing.stack.stop_service("payment")
    renewing.stack.start_service("payment")

    results = [place(renewing, token) for _ in range(5)]
    assert [status for status, _ in results] == [types_pb2.ORDER_STATUS_PAID] * 5, results
    assert sum(len(failed) for _, failed in results) <= 1, results
    assert "tls.channel_renewed" in renewing.log("order")
    assert "security.handshake_refused" not in renewing.log("order")
    renewed = expiry_metric(renewing, "order.cert")
    assert renewed is not None and renewed > 300 * 24 * 3600


def test_the_gateway_follows_a_rotated_token_key_without_a_restart(renewing: Renewing) -> None:
    before = renewing.token()
    assert place(renewing, before)[0] == types_pb2.ORDER_STATUS_PAID
    signing = new_key()
    (renewing.certs / files.JWT_SIGNING_KEY).write_bytes(private_pem(signing))
    (renewing.certs / files.JWT_PUBLIC_KEY).write_bytes(signing.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    assert place(renewing, renewing.token()) == (types_pb2.ORDER_STATUS_PAID, [])  # the new key, at once
    time.sleep(auth.LOOK_INTERVAL_S)
    status, failed = place(renewing, before)  # remembered as verified, but its key is gone
    assert status == types_pb2.ORDER_STATUS_UNSPECIFIED
    assert failed and all(f == "UNAUTHENTICATED: bad signature" for f in failed), failed
    assert wait_until(lambda: "jwt.keys_reloaded" in renewing.log("gateway"), what="the reload in the gateway's log")
