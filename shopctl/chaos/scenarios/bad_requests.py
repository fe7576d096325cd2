"""10. Bad requests: generated PlaceOrderRequests (hypothesis) and raw random bytes sent to every method."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import grpc
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from shop.v1 import (
    gateway_service_pb2,
    gateway_service_pb2_grpc,
    notification_service_pb2,
    order_service_pb2,
    payment_service_pb2,
    types_pb2,
)

from shopctl.chaos.harness import Outcome, Run
from shopctl.chaos.recorder import Attempt
from shopctl.chaos.scenarios.base import Env, Scenario
from shopctl.chaos.validity import order_problems, request_problems
from shoplib.rules import money
from shoplib.rules.bounds import MAX_REQUEST_BYTES

CALL_TIMEOUT_S = 10.0
PLACE_CODES = frozenset({"OK", "INVALID_ARGUMENT", "ALREADY_EXISTS", "RESOURCE_EXHAUSTED"})
# What a method may answer to bytes that parse into some request: reads also say NOT_FOUND.
RAW_CODES = PLACE_CODES | {"NOT_FOUND"}
# Our answer to bytes that are not the request type (INVALID_ARGUMENT; never gRPC's UNKNOWN).
PARSE_ERROR = "request body is not a valid "
SERVERS = {"gateway": gateway_service_pb2, "order": order_service_pb2, "payment": payment_service_pb2,
           "notification": notification_service_pb2}
OVERSIZE = MAX_REQUEST_BYTES + 16 * 1024

_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=140)
_ids = st.one_of(st.sampled_from(["", " ", "k", "é", "\x00", "a" * 128, "a" * 129]), _text)
_currency = st.one_of(st.sampled_from(["EUR", "EUR", "USD", "JPY", "EUX", "eur", ""]),
                      st.text(st.characters(exclude_categories=["Cs"]), max_size=4))
_amount = st.one_of(st.integers(0, 200_000), st.integers(-2**63, 2**63 - 1), st.sampled_from([-1, 10**13, 10**13 + 1]))
_quantity = st.one_of(st.integers(1, 20), st.integers(-2**31, 2**31 - 1), st.sampled_from([0, 10_000, 10_001]))
_price = st.one_of(st.none(), st.builds(types_pb2.Money, currency_code=_currency, amount_minor=_amount))
_line = st.builds(lambda p, q, m: types_pb2.OrderLine(product_id=p, quantity=q, unit_price=m), _ids, _quantity, _price)
_lines = st.one_of(st.lists(_line, max_size=3), st.lists(_line, min_size=99, max_size=101))
_mode = st.one_of(st.sampled_from([0, 1, 2]), st.integers(-2**31, 2**31 - 1))
_WILD = st.builds(lambda k, c, ls, m: gateway_service_pb2.PlaceOrderRequest(
    idempotency_key=k, customer_id=c, lines=ls, mode=m), _ids, _ids, _lines, _mode)
# Valid requests too, so that "no invalid order is stored" is tested against stored orders.
_good_line = st.builds(lambda p, q, a: (p, q, a), st.text("abcxyz-0123456789", min_size=1, max_size=20),
                       st.integers(1, 20), st.integers(0, 200_000))
_fresh_key = st.just(None).map(lambda _: f"valid-{uuid.uuid4().hex}")  # generation only: never replayed


def _valid(key: str, customer: str, currency: str, lines: list[tuple[str, int, int]],
           mode: types_pb2.FlowMode.ValueType
           ) -> gateway_service_pb2.PlaceOrderRequest:
    return gateway_service_pb2.PlaceOrderRequest(idempotency_key=key, customer_id=customer, mode=mode, lines=[
        types_pb2.OrderLine(product_id=p, quantity=q, unit_price=money.money(currency, a)) for p, q, a in lines])


_VALID = st.builds(_valid, _fresh_key, st.text("abcdefgh", min_size=1, max_size=12),
                   st.sampled_from(["EUR", "USD", "JPY"]), st.lists(_good_line, min_size=1, max_size=4),
                   st.sampled_from([0, 1, 2]))
REQUESTS = st.one_of(_VALID, _WILD)
# Always tried as well: a small request (about 2 KB) whose every field is wrong, 100 lines of it.
_BAD_LINE = types_pb2.OrderLine(product_id="", quantity=0, unit_price=money.money("XXX", -1))
WORST = gateway_service_pb2.PlaceOrderRequest(idempotency_key="", customer_id="", lines=[_BAD_LINE] * 100,
                                              mode=types_pb2.FlowMode.ValueType(9))  # no such mode


@dataclass
class Seen:
    attempts: list[Attempt] = field(default_factory=list)
    raw: Counter[str] = field(default_factory=Counter)  # method: code
    unexpected: list[str] = field(default_factory=list)
    oversize: dict[str, str] = field(default_factory=dict)  # server -> code
    exhausted_small: list[str] = field(default_factory=list)  # RESOURCE_EXHAUSTED under the size limit
    invalid_sent: int = 0  # requests the oracle (validity.py) calls invalid
    refused_valid: list[str] = field(default_factory=list)  # valid by the oracle, answered INVALID_ARGUMENT


def _place_all(address: str, examples: int, seen: Seen) -> None:
    with grpc.insecure_channel(address) as channel:
        stub = gateway_service_pb2_grpc.GatewayServiceStub(channel)

        @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        @given(REQUESTS)
        @example(WORST)
        def place(request: gateway_service_pb2.PlaceOrderRequest) -> None:
            record = Attempt(key=request.idempotency_key, declined=False, start=time.monotonic(), wall=time.time())
            try:
                reply = stub.PlaceOrder(request, timeout=CALL_TIMEOUT_S)
                record.code, record.order_id, record.status = "OK", reply.order.order_id, reply.order.status
            except grpc.RpcError as exc:
                record.code, record.details = exc.code().name, exc.details() or ""
                if record.code == "RESOURCE_EXHAUSTED" and request.ByteSize() < MAX_REQUEST_BYTES:
                    seen.exhausted_small.append(f"{request.ByteSize()} bytes, {len(request.lines)} lines: "
                                                f"{record.details[:150]}")
            record.end = time.monotonic()
            seen.attempts.append(record)
            wrong = request_problems(request)
            seen.invalid_sent += bool(wrong)
            if not wrong and record.code == "INVALID_ARGUMENT":
                seen.refused_valid.append(f"{request.idempotency_key!r}: {record.details[:100]}")

        place()


def _methods() -> list[tuple[str, str, bool]]:
    """(server, full method path, server-streaming) of every method of our four services."""
    found = []
    for server, module in SERVERS.items():
        for service in module.DESCRIPTOR.services_by_name.values():
            found += [(server, f"/{service.full_name}/{m.name}", m.server_streaming) for m in service.methods]
    return found


def _call(channel: grpc.Channel, method: str, streaming: bool, body: bytes) -> tuple[str, str]:
    try:
        if streaming:  # no serializers: the body goes as it is, the reply comes back as bytes
            stream: grpc.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(method)
            for _ in stream(body, timeout=CALL_TIMEOUT_S):
                pass
        else:
            unary: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(method)
            unary(body, timeout=CALL_TIMEOUT_S)
    except grpc.RpcError as exc:
        return exc.code().name, exc.details() or ""
    return "OK", ""


def _field_one(size: int) -> bytes:
    """A request whose field 1 (a string in every request we have) holds `size` bytes."""
    varint, n = bytearray(), size
    while n > 0x7F:
        varint.append(n & 0x7F | 0x80)
        n >>= 7
    return b"\x0a" + bytes(varint) + bytes([n]) + b"a" * size


def _raw_all(run: Run, per_method: int, rng: random.Random, seen: Seen) -> None:
    for server, method, streaming in _methods():
        with grpc.insecure_channel(run.stack.address(server)) as channel:
            for _ in range(per_method):
                body = rng.randbytes(rng.randint(0, 64))
                code, details = _call(channel, method, streaming, body)
                kind = "parse error" if code == "INVALID_ARGUMENT" and details.startswith(PARSE_ERROR) else code
                seen.raw[kind] += 1
                if kind not in RAW_CODES and kind != "parse error":
                    seen.unexpected.append(f"{method} {body.hex()[:40]}: {code} {details[:100]}")
            if server not in seen.oversize:
                seen.oversize[server] = _call(channel, method, streaming, _field_one(OVERSIZE))[0]


async def bad_requests(sc: Scenario, env: Env, control: bool) -> Outcome:
    """Control: the order service stores what it is given without validating it (skip_validation)."""
    async with env.run(per_service={"order": {"FAULTS": "skip_validation"} if control else {}}) as run:
        started, seen = dict(run.pids), Seen()
        await asyncio.to_thread(_place_all, run.stack.address("gateway"), env.sizes.bad_examples, seen)
        await asyncio.to_thread(_raw_all, run, env.sizes.bad_raw, run.rng, seen)
        judgement, snap = await run.judge(seen.attempts, allowed_codes=PLACE_CODES, phantoms=False)
        judgement.failures += run.restarts(started)
        invalid = {o: p for o, order in snap.orders.items() if (p := order_problems(order))}
        if invalid:
            run.fail("invalid_stored", f"{len(invalid)} invalid orders stored, e.g. {list(invalid.items())[:2]}")
        if seen.unexpected:
            run.fail("codes", f"{len(seen.unexpected)} raw requests got other answers, e.g. {seen.unexpected[:3]}")
        if wrong := {s: c for s, c in seen.oversize.items() if c != "RESOURCE_EXHAUSTED"}:
            run.fail("size_limit", f"requests over {MAX_REQUEST_BYTES} bytes not refused: {wrong}")
        if seen.exhausted_small:
            run.fail("size_limit", f"{len(seen.exhausted_small)} PlaceOrders under the {MAX_REQUEST_BYTES}-byte "
                                   f"limit answered RESOURCE_EXHAUSTED, e.g. {seen.exhausted_small[:2]}")
        if seen.refused_valid:
            run.fail("validation", f"{len(seen.refused_valid)} valid requests refused, e.g. {seen.refused_valid[:2]}")
        codes = Counter(a.code for a in seen.attempts)
        run.fault("bad_request", seen.invalid_sent + seen.raw["parse error"] + len(seen.oversize))
        if seen.invalid_sent and seen.raw["parse error"]:
            run.prove(f"{seen.invalid_sent} invalid PlaceOrders sent ({codes['INVALID_ARGUMENT']} refused), "
                      f"{seen.raw['parse error']} undecodable payloads, {len(seen.oversize)} oversized requests")
        run.notes.update(place_codes=dict(codes), raw_codes=dict(seen.raw), oversize=seen.oversize)
        return sc.outcome(run, judgement, control)
