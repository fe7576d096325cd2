"""The profile's table charges each py-spy sample to the right bucket (bench.profile.buckets)."""

from __future__ import annotations

from bench.profile import buckets

LOOP = "Runner.run (asyncio/runners.py:118);run_forever (loop.c:33192);Handle__run (loop.c:70959)"
HANDLER = f"{LOOP};place_order (order_svc/handlers.py:37)"


def test_a_sample_is_charged_to_the_leaf_most_frame_a_rule_claims() -> None:
    assert buckets.charge(f"{HANDLER};BoundLogger.info (structlog/_native.py:12)".split(";")) == "logging"
    assert buckets.charge(f"{HANDLER};new_order (order_svc/domain.py:40)".split(";")) == "our handlers"


def test_unclaimed_leaves_stdlib_or_native_are_charged_to_their_caller() -> None:
    assert buckets.charge(f"{HANDLER};uuid4 (uuid.py:723);urandom (libc.so.6)".split(";")) == "our handlers"
    grpc_core = f"{LOOP};0x7f02 (grpc/_cython/cygrpc.cpython-311-x86_64-linux-gnu.so);memcpy (libc.so.6)"
    assert buckets.charge(grpc_core.split(";")) == "gRPC"


def test_asyncio_streams_under_the_redis_client_count_as_the_commit() -> None:
    frames = f"{HANDLER};Connection.send_packed_command (redis/asyncio/connection.py:5);" \
             "StreamWriter.writelines (asyncio/streams.py:9)"
    assert buckets.charge(frames.split(";")) == "commit (redis client)"


def test_sleeping_samples_are_left_out_and_the_shares_sum_to_one() -> None:
    lines = [f"{LOOP};uv__io_poll (linux.c:1);epoll_wait (libc.so.6) 70\n",
             f"{HANDLER} 3\n", f"{HANDLER};dumps (orjson) 1\n", "\n"]
    shares, samples = buckets.shares(lines)
    assert samples == 4
    assert shares["our handlers"] == 0.75 and shares["logging"] == 0.25
    assert abs(sum(shares.values()) - 1) < 1e-9


def test_the_hottest_of_our_functions_are_counted_once_per_sample_without_line_numbers() -> None:
    lines = [f"{HANDLER};fingerprint (order_svc/domain.py:10) 2\n", f"{HANDLER} 2\n"]
    assert buckets.hottest(lines, 2, ours_only=True) == [("place_order (order_svc/handlers.py)", 1.0),
                                                          ("fingerprint (order_svc/domain.py)", 0.5)]
