"""Every bound on what a client or the broker hands the system, in one place, each with its reason.

A value is checked against its bound before it is stored or copied onward: requests are refused
(INVALID_ARGUMENT, RESOURCE_EXHAUSTED), stream entries are dead-lettered, streams push back.
"""

from __future__ import annotations

from shoplib import config

# --- From clients (gRPC) ---
# Requests above this size get RESOURCE_EXHAUSTED from gRPC itself: no order needs more.
MAX_REQUEST_BYTES = 256 * 1024
# Request metadata (headers) above this is refused by gRPC: ours is a correlation id and a deadline.
MAX_METADATA_BYTES = 16 * 1024
# Calls one server works on at once; more get RESOURCE_EXHAUSTED instead of queueing without end
# (64 sync orders in flight plus hundreds of WatchOrder streams stay far below it).
MAX_CONCURRENT_RPCS = 4096
# Identifiers a client chooses (customer, product, idempotency key, order id in a look-up).
MAX_ID_LENGTH = 128
# An order with more lines is a bulk import, not a checkout.
MAX_LINES = 100
# Per line: far above a shop's stock, far below overflow.
MAX_QUANTITY = 10_000
# Largest amount in minor units (10^13 = 100 billion major units): quantity * price sums of
# valid lines can never overflow int64.
MAX_AMOUNT_MINOR = 10**13
# Free text a caller may attach (a decline reason passed to a notification).
MAX_TEXT_LENGTH = 500
# Field violations carried in one error: status details travel as metadata, which gRPC caps at
# 16 KiB; 20 stay far below it, and a client fixes the first ones first.
MAX_VIOLATIONS = 20
# A caller's x-correlation-id is kept only when it is this short and of safe characters.
MAX_CORRELATION_ID_LENGTH = 128
# Live WatchOrder followers per order-service process; more get RESOURCE_EXHAUSTED.
MAX_WATCHERS = 10_000

# --- From the broker (Redis Streams, pub/sub) ---
# A stream entry larger than this is not one of our events (an order is at most
# MAX_REQUEST_BYTES): it goes to the dead letters, keeping only its first bytes.
MAX_ENTRY_BYTES = 2 * MAX_REQUEST_BYTES
# Dead letters wait for a person; past this many the oldest go (approximate MAXLEN).
DEAD_LETTER_MAXLEN = 100_000
# Error texts kept with a dead letter or a failure record.
MAX_ERROR_CHARS = 1_000
# A stream that holds this many entries (consumers far behind or gone) refuses new ones:
# writers get UNAVAILABLE (BACKLOG) and back off instead of filling Redis's memory.
STREAM_MAX_BACKLOG = config.optional("STREAM_MAX_BACKLOG", 1_000_000, int)
