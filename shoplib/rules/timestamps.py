"""Timestamps for messages (protobuf's GetCurrentTime goes through datetime: several times slower,
and FromNanoseconds checks the range in Python: the clock's own time needs no check)."""

from __future__ import annotations

import time

from google.protobuf import timestamp_pb2

NANOS_PER_SECOND = 1_000_000_000


def now() -> timestamp_pb2.Timestamp:
    seconds, nanos = divmod(time.time_ns(), NANOS_PER_SECOND)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def stamp(timestamp: timestamp_pb2.Timestamp) -> None:
    """Set `timestamp` (a message's field, in place: no copy) to now."""
    timestamp.seconds, timestamp.nanos = divmod(time.time_ns(), NANOS_PER_SECOND)
