"""Timestamps for messages (protobuf's GetCurrentTime goes through datetime: several times slower)."""

from __future__ import annotations

import time

from google.protobuf import timestamp_pb2


def now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(time.time_ns())
    return stamp
