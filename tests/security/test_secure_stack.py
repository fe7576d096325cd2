"""The whole stack as real processes under SECURE=1 (mTLS on every hop, tokens at the gateway,
one ACL user per service in its own Redis): both modes still do their whole job, Redis refused
none of it, no log line carries a secret, and the secure grpcurl calls of docs/operations.md work as written."""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
import redis
from shop.v1 import gateway_service_pb2 as gw
from shop.v1 import gateway_service_pb2_grpc as gw_grpc
from shop.v1 import notification_service_pb2 as nt
from shop.v1 import notification_service_pb2_grpc as nt_grpc
from shop.v1 import payment_service_pb2 as pm
from shop.v1 import payment_service_pb2_grpc as pm_grpc
from shop.v1 import types_pb2

from shopctl import secure, tokens
from shopctl.load import PAID_LINE
from shopctl.stack import DEFAULT_PORTS, Stack
from shoplib.security import acl, files
from tests.e2e.test_readme_grpcurl import GRPCURL, OPERATIONS, Ran
from tests.events.helpers import FAST_ENV, new_id, wait_until

pytestmark = pytest.mark.e2e
TIMEOUT_S = 15.0
PLACEHOLDER = "ord_..."


@dataclass
class Secured:
    stack: Stack
    certs: Path
    tokens_used: list[str] = field(default_factory=list)
    order_id: str = ""

    def token(self, subject: str) -> str:
        self.tokens_used.append(tokens.mint((self.certs / files.JWT_SIGNING_KEY).read_bytes(), subject))
        return self.tokens_used[-1]

    def channel(self, name: str, identity: str = "client") -> grpc.Channel:
        ca = (self.certs / files.CA).read_bytes()
        key, cert = (self.certs / f"{identity}-key.pem").read_bytes(), (self.certs / f"{identity}.pem").read_bytes()
        return grpc.secure_channel(self.stack.address(name), grpc.ssl_channel_credentials(ca, key, cert))

    def admin(self) -> redis.Redis:
        assert isinstance(self.stack.redis, secure.SecureRedis)
        return redis.Redis(port=self.stack.redis.port, **self.stack.redis.credentials(acl.ADMIN))


@pytest.fixture(scope="module")
def secured(certs_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    with pytest.MonkeyPatch.context() as env:
        env.delenv("REDIS_URL", raising=False)  # the stack starts its own Redis, with the ACL users
        stack = Stack(free_ports=True, log_dir=tmp_path_factory.mktemp("secure-logs"), env={**FAST_ENV, "FAULTS": ""})
    with stack:
        yield Secured(stack, certs_dir)


def both_sent(stub: nt_grpc.NotificationServiceStub, order_id: str) -> list[int] | None:
    """The kinds sent for the order, once both are (the receipt may land a moment after PAID)."""
    listing = stub.ListNotifications(nt.ListNotificationsRequest(order_id=order_id), timeout=TIMEOUT_S)
    kinds = [note.kind for note in listing.notifications]
    return kinds if len(kinds) == 2 else None


@pytest.mark.parametrize("mode", [types_pb2.FLOW_MODE_SYNC, types_pb2.FLOW_MODE_EVENTS])
def test_each_service_does_its_whole_job_under_its_own_user(secured: Secured, mode: int) -> None:
    metadata = (("authorization", f"Bearer {secured.token('alice')}"),)
    with secured.channel("gateway") as g, secured.channel("payment") as p, secured.channel("notification") as n:
        placed = gw_grpc.GatewayServiceStub(g).PlaceOrder(gw.PlaceOrderRequest(
            idempotency_key=new_id("k"), customer_id="alice", lines=[PAID_LINE], mode=mode),
            metadata=metadata, timeout=TIMEOUT_S).order
        watched = [r.order for r in gw_grpc.GatewayServiceStub(g).WatchOrder(
            gw.WatchOrderRequest(order_id=placed.order_id), metadata=metadata, timeout=TIMEOUT_S)]
        payment = pm_grpc.PaymentServiceStub(p).GetPayment(pm.GetPaymentRequest(order_id=placed.order_id),
                                                           timeout=TIMEOUT_S).payment
        sent = wait_until(lambda: both_sent(nt_grpc.NotificationServiceStub(n), placed.order_id), what="receipt")
    assert watched[-1].status == types_pb2.ORDER_STATUS_PAID
    assert payment.status == types_pb2.PAYMENT_STATUS_SUCCEEDED
    assert sorted(sent) == [types_pb2.NOTIFICATION_KIND_ORDER_RECEIVED, types_pb2.NOTIFICATION_KIND_PAYMENT_RECEIPT]


def readme_secure_calls() -> list[str]:
    text = OPERATIONS.read_text()
    block = text[text.index("```sh\ngrpcurl -cacert"):]
    block = block[len("```sh\n"):block.index("```", len("```sh\n"))].replace("\\\n", " ")
    return [call.strip() for call in re.split(r"\n(?=grpcurl )", block) if call.strip()]


def run_readme(secured: Secured, call: str) -> Ran:
    for name, port in DEFAULT_PORTS.items():
        call = call.replace(f"localhost:{port}", secured.stack.address(name))
    call = call.replace("certs/", f"{secured.certs}/").replace("$TOKEN", secured.token("alice"))
    call = call.replace(PLACEHOLDER, secured.order_id).replace('"k-3"', f'"{new_id("k")}"')
    done = subprocess.run([str(GRPCURL), *shlex.split(call)[1:]], capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, f"{call}\nexit {done.returncode}: {done.stderr}"
    return Ran(call, done.stdout)


def test_the_readme_secure_grpcurl_calls_answer_as_documented(secured: Secured) -> None:
    calls = readme_secure_calls()
    assert len(calls) == 5
    assert "shop.v1.GatewayService" in run_readme(secured, calls[0]).stdout.split()
    [placed] = run_readme(secured, calls[1]).messages()
    secured.order_id = placed["order"]["order_id"]
    assert run_readme(secured, calls[2]).messages()[-1]["order"]["status"] == "ORDER_STATUS_PAID"
    [payment] = run_readme(secured, calls[3]).messages()
    assert payment["payment"]["status"] == "PAYMENT_STATUS_SUCCEEDED"
    assert run_readme(secured, calls[4]).messages() == [{"status": "SERVING"}]


def test_the_client_certificate_calling_charge_through_grpcurl_is_permission_denied(secured: Secured) -> None:
    tls = f"-cacert {secured.certs}/ca.pem -cert {secured.certs}/client.pem -key {secured.certs}/client-key.pem"
    done = subprocess.run([str(GRPCURL), *shlex.split(tls), "-d", '{"order_id":"ord_p0_x"}',
                           secured.stack.address("payment"), "shop.v1.PaymentService/Charge"],
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    assert "Code: PermissionDenied" in done.stderr
    assert "caller 'client' may not call /shop.v1.PaymentService/Charge" in done.stderr
    log = secured.stack.log_path("payment")
    assert wait_until(lambda: '"caller":"client","allowed":["order"],"event":"security.caller_refused"'
                      in log.read_text(), what="the refusal in the payment service's log")


def test_a_caller_without_a_certificate_is_refused_and_the_servers_log_says_why(secured: Secured) -> None:
    done = subprocess.run([str(GRPCURL), "-cacert", f"{secured.certs}/ca.pem", secured.stack.address("payment"),
                           "grpc.health.v1.Health/Check"], capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode != 0 and "Failed to dial target host" in done.stderr
    log = secured.stack.log_path("payment")
    assert wait_until(lambda: "PEER_DID_NOT_RETURN_A_CERTIFICATE" in log.read_text(), what="the handshake's reason")


def test_redis_refused_no_service_anything_but_the_config_read_it_tolerates(secured: Secured) -> None:
    """ACL LOG lists every refusal Redis made (the stack's admin reads it). The only one a service
    got is CONFIG GET appendfsync, which the store asks once and does without (as on a managed Redis)."""
    with secured.admin() as admin:
        refused = [entry for entry in admin.acl_log() if entry.get("username") in acl.SERVICE_USERS
                   and entry.get("object") != "config|get"]
    assert [(e["username"], e["reason"], e["object"]) for e in refused] == []


def test_no_log_line_of_any_service_carries_a_secret(secured: Secured) -> None:
    """Run after the calls above: their tokens, every Redis password and every private key are
    nowhere in the services' logs."""
    assert isinstance(secured.stack.redis, secure.SecureRedis) and secured.tokens_used
    secrets = [*secured.tokens_used, *(secured.stack.redis.password_file(u).read_text() for u in acl.USERS)]
    keys = [line for path in secured.certs.glob("*-key.pem") for line in path.read_text().splitlines()
            if line and not line.startswith("-----")]
    logs = {path.name: path.read_text() for path in secured.stack.log_dir.glob("*.log")}  # type: ignore[union-attr]
    assert set(logs) == {"gateway.log", "order.log", "payment.log", "notification.log"}
    leaked = {name: [s[:8] for s in [*secrets, *keys] if s in text] for name, text in logs.items()}
    assert leaked == {name: [] for name in logs}
    assert not any("PRIVATE KEY" in text or "Bearer " in text for text in logs.values())
