"""Gateway settings, from the environment; required ones have no default."""

from __future__ import annotations

from dataclasses import dataclass

from shop.v1 import types_pb2

from shoplib import config

_MODES = {"sync": types_pb2.FLOW_MODE_SYNC, "events": types_pb2.FLOW_MODE_EVENTS}


def _mode(raw: str) -> types_pb2.FlowMode.ValueType:
    if raw.lower() not in _MODES:
        raise ValueError(f"expected one of {sorted(_MODES)}")
    return _MODES[raw.lower()]


@dataclass(frozen=True)
class Settings:
    port: int
    order_addr: str
    default_mode: types_pb2.FlowMode.ValueType
    # /metrics (Prometheus) on this port; 0: off (the default when built in-process, as the tests do).
    metrics_port: int = 0

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            port=config.port("GATEWAY_PORT", 50051),
            metrics_port=config.port("GATEWAY_METRICS_PORT", 9101),
            order_addr=config.required("ORDER_SERVICE_ADDR"),
            default_mode=config.optional("DEFAULT_FLOW_MODE", types_pb2.FLOW_MODE_SYNC, _mode),
        )
