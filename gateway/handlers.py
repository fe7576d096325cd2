"""The gateway's one decision: which flow an order takes."""

from __future__ import annotations

from shop.v1 import types_pb2


def resolve_mode(requested: types_pb2.FlowMode.ValueType,
                 default: types_pb2.FlowMode.ValueType) -> types_pb2.FlowMode.ValueType:
    """The request's mode, or the configured default when it left the mode unspecified."""
    return default if requested == types_pb2.FLOW_MODE_UNSPECIFIED else requested
