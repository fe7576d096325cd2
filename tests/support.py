"""Builders and small helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import uuid

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from shop.v1 import types_pb2

# The reason a TLS-to-Redis test is skipped with where no TLS-capable redis-server 7+ exists; the CI
# step of a newcomer's machine allows this skip and no other (tests/conftest.py).
TLS_UNAVAILABLE = "TLS to Redis needs a TLS-capable redis-server 7+, and none is here"


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def line(product_id: str = "sku-1", quantity: int = 1, amount_minor: int = 1_999,
         currency: str = "EUR") -> types_pb2.OrderLine:
    return types_pb2.OrderLine(product_id=product_id, quantity=quantity,
                               unit_price=types_pb2.Money(currency_code=currency, amount_minor=amount_minor))


# The payment service declines orders above 1,000.00 (100_000 minor units) by default.
PAID_LINES = (line("sku-book", 2, 1_999), line("sku-pen", 1, 250))  # 42.48 EUR
DECLINED_LINES = (line("sku-tv", 1, 150_000),)  # 1,500.00 EUR


def error_info(error: grpc.RpcError) -> dict[str, str]:
    """The metadata of the google.rpc.ErrorInfo a failed call carries (empty when none)."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return {"reason": info.reason, **info.metadata}
    return {}


def retry_delay_s(error: grpc.RpcError) -> float:
    """The delay a failed call's google.rpc.RetryInfo asks the client to wait before retrying."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            delay: float = info.retry_delay.ToTimedelta().total_seconds()  # google.rpc ships no types
            return delay
    raise AssertionError("the error carries no RetryInfo")
