"""Receipts read back from notification-events: when each order's receipt was sent, on the
sender's clock (this machine's), for the time from PlaceOrder to receipt."""

from __future__ import annotations

import time
from typing import cast

import redis
from redis.typing import KeyT, StreamIdT
from shop.v1 import events_pb2, types_pb2

from bench.events.notes import note
from bench.events.sizes import STALL_S
from shoplib import catalogue
from shoplib.store import partitions

RECEIPT = types_pb2.NOTIFICATION_KIND_PAYMENT_RECEIPT
NOTIFICATION_SENT = events_pb2.NotificationSent
NOTIFICATION_SENT_TYPE = b"shop.notification.sent.v1"
BATCH = 5000  # entries per XREAD
POLL_S = 0.05  # how often a wait for receipts reads again

# XREAD's reply for one stream as our client gets it (RESP2, no decode_responses).
Entries = list[tuple[bytes, dict[bytes, bytes]]]
XReadReply = list[tuple[bytes, Entries]]


class Receipts:
    """Every receipt notification sent so far: order id -> envelope time (the sender's clock,
    which is this machine's clock). Reads notification-events incrementally from its start."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        cursors: dict[KeyT, StreamIdT] = dict.fromkeys(partitions.streams(catalogue.NOTIFICATION_EVENTS), "0-0")
        self._cursors = cursors  # one per partition
        self.at: dict[str, float] = {}

    def poll(self, max_batches: int = 1000) -> None:
        for _ in range(max_batches):
            reply = cast(XReadReply, self._client.xread(self._cursors, count=BATCH))
            if not reply:
                return
            for stream, entries in reply:
                for entry_id, fields in entries:
                    self._cursors[stream.decode()] = entry_id.decode()
                    if fields.get(b"type") == NOTIFICATION_SENT_TYPE:
                        self._record(fields)

    def _record(self, fields: dict[bytes, bytes]) -> None:
        envelope, payload = catalogue.decode(fields)
        if isinstance(payload, NOTIFICATION_SENT) and payload.notification.kind == RECEIPT:
            self.at[envelope.subject] = envelope.time.seconds + envelope.time.nanos / 1e9

    def wait_for(self, order_ids: list[str], timeout_s: float) -> int:
        """Polls until every order has its receipt, the time is up, or no receipt came for
        STALL_S; returns how many are missing."""
        deadline = time.monotonic() + timeout_s
        last_missing, last_change = -1, time.monotonic()
        while True:
            self.poll()
            missing = sum(1 for order_id in order_ids if order_id not in self.at)
            now = time.monotonic()
            if missing != last_missing:
                last_missing, last_change = missing, now
            if not missing:
                return 0
            if now > deadline or now - last_change > STALL_S:
                why = f"no progress for {STALL_S:.0f} s" if now <= deadline else "time limit"
                note(f"{missing} of {len(order_ids)} receipts never came ({why})")
                return missing
            time.sleep(POLL_S)
