"""The options every gRPC server runs with, each with its reason: client keepalive accepted at
the intervals common clients use, a ping flood still sent away, bounded metadata, connections
aged out so that clients re-resolve and reach newly scaled pods."""

from __future__ import annotations

from shoplib.rules.bounds import MAX_METADATA_BYTES, MAX_REQUEST_BYTES

# Client keepalive pings this far apart are welcome, with or without calls in flight: grpc-go and
# grpc-java clients ping at most every 10 s, and gRPC's default (5 min) sends a quiet WatchOrder
# away with "too_many_pings" after three such pings.
MIN_CLIENT_PING_INTERVAL_MS = 5_000
# Pings closer together than that are strikes; one more than this many gets GOAWAY, so a ping
# flood is still refused (gRPC's default, stated so the interval above cannot be read as "any").
MAX_PING_STRIKES = 2
# Our own pings on a connection with nothing to say: a client that vanished without closing it (a
# dropped NAT entry, a suspended laptop) is found within a minute and its streams are freed.
SERVER_KEEPALIVE_TIME_MS = 60_000
# A ping unanswered for this long means the client is gone (gRPC's default, stated beside the above).
SERVER_KEEPALIVE_TIMEOUT_MS = 20_000
# A connection is sent away (GOAWAY) this long after it opened, so that callers resolve their
# dns:/// target again and spread onto pods that were scaled out since: without it a long-lived
# channel keeps its first pods for ever. 60 s: new pods get traffic within a minute of being ready
# (a scale-out itself takes about that: the autoscaler's 15 s period, then the pod's start); the
# cost is one reconnect per connection a minute (a handshake, milliseconds, spread by gRPC's
# +-10 % jitter), while calls go on over the other connections. Also well past the 30 s over which
# tests/e2e/test_keepalive.py watches an idle connection stay up under client pings.
MAX_CONNECTION_AGE_MS = 60_000
# Calls in flight on a connection sent away get this long to finish before it is closed: longer
# than any unary call's deadline here (seconds); a WatchOrder stream longer than this is ended
# UNAVAILABLE and its client watches again (GetOrder gives it the state it missed).
MAX_CONNECTION_AGE_GRACE_MS = 60_000
SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
    # Soft and hard limit alike, so a request above the bound is always refused, never at random.
    ("grpc.max_metadata_size", MAX_METADATA_BYTES),
    ("grpc.absolute_max_metadata_size", MAX_METADATA_BYTES),
    ("grpc.keepalive_permit_without_calls", 1),  # idle pooled connections may ping too
    # The server's limit on pings received (GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS);
    # "min_recv_ping_interval" is the C macro's name only: gRPC ignores unknown keys without a word.
    ("grpc.http2.min_ping_interval_without_data_ms", MIN_CLIENT_PING_INTERVAL_MS),
    ("grpc.http2.max_ping_strikes", MAX_PING_STRIKES),
    ("grpc.keepalive_time_ms", SERVER_KEEPALIVE_TIME_MS),
    ("grpc.keepalive_timeout_ms", SERVER_KEEPALIVE_TIMEOUT_MS),
    ("grpc.max_connection_age_ms", MAX_CONNECTION_AGE_MS),
    ("grpc.max_connection_age_grace_ms", MAX_CONNECTION_AGE_GRACE_MS),
]
