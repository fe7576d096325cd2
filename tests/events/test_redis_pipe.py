"""The lean commit connection (shoplib.store.lean) against a real redis-server: replies reach the
command that asked, error replies stay in their place, and every way Redis goes away is an outage
error within the deadline, after which the connection comes back by itself."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from typing import cast

import pytest
import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import NoScriptError, ResponseError

from shopctl.local_redis.server import LocalRedis, free_port
from shoplib.commit.committers import PipelinedCommitter
from shoplib.commit.writes import Writes
from shoplib.store import connections, outage
from shoplib.store.lean import Endpoint, RedisPipe
from shoplib.store.reads import PipeReads, reads_for

SHORT_TIMEOUT_S = 0.3  # the pipe's reply deadline in the stall test


@pytest.fixture
def server(local_redis: LocalRedis) -> LocalRedis:
    return local_redis


@pytest.fixture
async def pipe(server: LocalRedis) -> AsyncIterator[RedisPipe]:
    lean = RedisPipe(Endpoint("127.0.0.1", server.port), timeout_s=SHORT_TIMEOUT_S)
    yield lean
    await lean.close()


async def test_each_reply_reaches_its_command_with_errors_in_place(pipe: RedisPipe) -> None:
    commands: list[tuple[str | int, ...]] = [("SET", f"k{i}", i) for i in range(200)]
    commands += [("GET", f"k{i}") for i in range(200)]
    commands += [("INCR", "k1"), ("LPUSH", "k2", "x"), ("EVALSHA", "0" * 40, 0), ("GET", "missing")]
    replies = await pipe.execute(commands)
    assert replies[:200] == [b"OK"] * 200
    assert replies[200:400] == [str(i).encode() for i in range(200)]
    assert replies[400] == 2
    assert isinstance(replies[401], ResponseError) and str(replies[401]).startswith("WRONGTYPE")
    assert isinstance(replies[402], NoScriptError)
    assert replies[403] is None


async def test_concurrent_callers_on_one_connection_get_their_own_replies(pipe: RedisPipe) -> None:
    async def caller(n: int) -> list[object]:
        return await pipe.execute([("SET", f"c{n}", n), ("GET", f"c{n}"), ("ECHO", f"caller-{n}")])

    results = await asyncio.gather(*(caller(n) for n in range(300)))
    assert results == [[b"OK", str(n).encode(), f"caller-{n}".encode()] for n in range(300)]


async def test_a_caller_that_gives_up_is_skipped_on_a_shared_connection(pipe: RedisPipe) -> None:
    slow = asyncio.ensure_future(pipe.execute([("BLPOP", "never-filled", "0.1")]))  # its reply comes late
    await asyncio.sleep(0.02)
    slow.cancel()
    assert await pipe.execute([("ECHO", "after")]) == [b"after"]  # not the BLPOP's late nil


async def test_a_reader_that_gives_up_leaves_a_fresh_connection_for_the_next(server: LocalRedis) -> None:
    pipe = RedisPipe(Endpoint("127.0.0.1", server.port), drop_on_cancel=True)
    blocked = asyncio.ensure_future(pipe.execute([("BLPOP", "never-filled", "5")]))  # holds its connection
    await asyncio.sleep(0.05)
    blocked.cancel()
    with pytest.raises(asyncio.CancelledError):
        await blocked
    started = time.monotonic()
    assert await pipe.execute([("ECHO", "after")]) == [b"after"]
    assert time.monotonic() - started < 1.0  # not queued behind the blocked read
    await pipe.close()


async def test_a_stalled_redis_is_a_timeout_and_the_connection_comes_back(pipe: RedisPipe,
                                                                          server: LocalRedis) -> None:
    await pipe.execute([("PING",)])
    assert server.process is not None
    server.process.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(redis.TimeoutError) as caught:
            await pipe.execute([("SET", "stalled", "1")])
        assert time.monotonic() - started < SHORT_TIMEOUT_S + 0.5
        assert outage.is_outage(caught.value)
    finally:
        server.process.send_signal(signal.SIGCONT)
    assert await pipe.execute([("ECHO", "back")]) == [b"back"]


async def test_the_deadline_counts_from_each_batch_not_from_the_connections_timer(pipe: RedisPipe,
                                                                                   server: LocalRedis) -> None:
    await pipe.execute([("PING",)])  # arms the connection's one timer for this batch's deadline
    await asyncio.sleep(SHORT_TIMEOUT_S * 0.7)
    assert server.process is not None
    server.process.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(redis.TimeoutError):
            await pipe.execute([("PING",)])
        waited = time.monotonic() - started
        assert SHORT_TIMEOUT_S - 0.01 <= waited < SHORT_TIMEOUT_S + 0.2  # its own deadline, not the first's
    finally:
        server.process.send_signal(signal.SIGCONT)


async def test_a_killed_redis_is_a_connection_error_and_a_restarted_one_is_used_again(pipe: RedisPipe,
                                                                                    server: LocalRedis) -> None:
    assert await pipe.execute([("SET", "before", "1")]) == [b"OK"]
    server.kill()
    await asyncio.sleep(0.05)  # the kernel closes the socket; the pipe sees it
    with pytest.raises(redis.ConnectionError) as caught:
        await pipe.execute([("GET", "before")])
    assert outage.is_outage(caught.value)
    server.start()
    assert await pipe.execute([("GET", "before")]) == [b"1"]  # AOF kept it; a new connection asked


async def test_nothing_listening_is_a_connection_error_at_once() -> None:
    lean = RedisPipe(Endpoint("127.0.0.1", free_port()))
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError) as caught:
        await lean.execute([("PING",)])
    assert time.monotonic() - started < connections.CONNECT_TIMEOUT_S + 0.5
    assert outage.is_outage(caught.value)


async def test_it_logs_in_as_the_pool_does_and_a_wrong_password_is_refused_as_the_pool_refuses_it(
        pipe: RedisPipe, server: LocalRedis) -> None:
    await pipe.execute([("ACL", "SETUSER", "lean", "on", ">right-secret", "~*", "+@all")])
    lean = RedisPipe(Endpoint("127.0.0.1", server.port, db=3, username="lean", password="right-secret"))
    whoami, info = await lean.execute([("ACL", "WHOAMI"), ("CLIENT", "INFO")])
    assert whoami == b"lean" and b" db=3 " in info
    await lean.close()
    wrong = RedisPipe(Endpoint("127.0.0.1", server.port, username="lean", password="wrong-secret"))
    with pytest.raises(redis.AuthenticationError) as caught:
        await wrong.execute([("PING",)])
    assert "WRONGPASS" in str(caught.value) and "secret" not in str(caught.value)
    assert outage.is_outage(caught.value)  # as redis-py's pool raises it (a ConnectionError)
    assert "secret" not in repr(Endpoint("127.0.0.1", server.port, username="lean", password="right-secret"))


async def test_the_endpoint_is_the_pools_and_none_where_the_pipe_does_not_apply(server: LocalRedis) -> None:
    client = connections.connect(server.url)
    try:
        assert Endpoint.of(client) == Endpoint("127.0.0.1", server.port, 0)
    finally:
        await client.aclose()
    unix = aioredis.Redis(unix_socket_path="/nonexistent.sock")
    assert Endpoint.of(unix) is None
    await unix.aclose()
    cluster = RedisCluster(host="127.0.0.1", port=server.port)  # not connected: commands follow slots
    assert Endpoint.of(cast(aioredis.Redis, cluster)) is None
    lax = aioredis.Redis.from_url(f"rediss://127.0.0.1:{server.port}?ssl_cert_reqs=none")
    assert Endpoint.of(lax) is None  # a TLS setting the lean connection does not reproduce: redis-py keeps it
    await lax.aclose()


async def test_the_stores_lean_reads_answer_as_redis_py_does(server: LocalRedis) -> None:
    client = connections.connect(server.url)
    reads = reads_for(client)
    assert isinstance(reads, PipeReads)
    try:
        await client.set("r:k", b"\x00order")
        await client.rpush("r:l", "a", "b", "c")
        await client.zadd("r:z", {"x": 1, "y": 2, "z": 3})
        assert await reads.get("r:k") == await client.get("r:k") == b"\x00order"
        assert await reads.get("r:missing") is None
        assert await reads.lrange("r:l", 0, -1) == await client.lrange("r:l", 0, -1)
        assert await reads.zrangebyscore("r:z", "-inf", 2, start=0, num=10) == [b"x", b"y"]
        with pytest.raises(ResponseError, match="WRONGTYPE"):
            await reads.get("r:l")
    finally:
        await reads.aclose()
        await client.aclose()


async def test_commits_after_the_script_cache_was_emptied_run_once_each(server: LocalRedis) -> None:
    """NOSCRIPT (a restarted Redis) means the script did not run: the committer loads it and sends
    those commits again, and only those, so each is applied exactly once."""
    client = connections.connect(server.url)
    committer = PipelinedCommitter(client)
    try:
        assert await committer.commit(_counted("warm")) is True  # connected, script cached
        for round_ in range(3):
            await client.script_flush()
            results = await asyncio.gather(*(committer.commit(_counted(f"k{round_}"), once=(f"once:{round_}:{i}", 1))
                                             for i in range(20)))
            assert results == [True] * 20
            assert int(await client.get(f"k{round_}") or 0) == 20
    finally:
        await committer.aclose()
        await client.aclose()


def _counted(key: str) -> Writes:
    writes = Writes()
    writes.incr(key)
    return writes


async def test_a_commit_that_cannot_be_sent_fails_its_batch_at_once_not_for_ever(server: LocalRedis) -> None:
    client = connections.connect(server.url)
    committer = PipelinedCommitter(client)
    try:
        assert await committer.commit(_counted("warm")) is True  # connected: the no-task path
        unsendable = Writes()
        unsendable.set("k", cast(str, None))  # a bug upstream: a value RESP cannot carry
        results = await asyncio.wait_for(asyncio.gather(committer.commit(unsendable), committer.commit(_counted("n")),
                                                        return_exceptions=True), 2.0)
        assert all(isinstance(r, Exception) for r in results)  # the batch failed, nobody waits for ever
        assert await committer.commit(_counted("after")) is True  # and the next batch goes through
    finally:
        await committer.aclose()
        await client.aclose()
