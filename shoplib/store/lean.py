"""A lean pipelined connection to one Redis, for the commit path.

redis-py spends 150-250 µs of client CPU on one pipelined EVALSHA (pool checkout, Python packing of
every argument, response callbacks, per-command timeouts); this connection spends about 50
(`bench.redis_roundtrip`): commands are packed by hiredis in C, written together in one write per
batch, and the replies parsed by hiredis and handed to their callers in order (Redis answers one
connection's commands in the order they were sent).

Failures use redis-py's exception classes, so the outage rules (`shoplib.store.outage`) apply unchanged:
- Redis unreachable, or the connection lost while replies are owed: ConnectionError;
- no reply within the command timeout: TimeoutError, and the connection is dropped (a late reply
  could no longer be matched to its command);
- an error reply: a ResponseError (NoScriptError for NOSCRIPT) in that command's place.
A command is never sent twice here: after a lost connection the caller's outage handling decides.
The connection is opened on first use and again after it was lost or dropped; a caller that is
cancelled while it waits drops it (a blocked XREADGROUP would otherwise hold up the next command).

A connection dropped silently (no FIN: a NAT or load balancer forgot it, a proxy blackholes it, the
host vanished) is found two ways: TCP keepalive on the socket (connections.KEEPALIVE_*) while it idles,
and a PING before the first use after HEALTH_CHECK_INTERVAL_S idle (as redis-py's
`health_check_interval`): a PING unanswered within HEALTH_CHECK_TIMEOUT_S drops the connection and
the commands go out on a new one, instead of waiting out the command timeout. Connections made
with `RedisPipe.of(client)` belong to that client: `close_all(client)` closes them on stop.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import weakref
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import hiredis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection, SSLConnection
from redis.credentials import CredentialProvider
from redis.exceptions import AuthenticationError, NoScriptError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shoplib.security.redis_auth import FreshTlsConnection, note_tls
from shoplib.store import connections
from shoplib.store.connections import CONNECT_TIMEOUT_S, SOCKET_TIMEOUT_S

Arg = str | bytes | int | float
# uvloop's timers count whole milliseconds: a batch this close to its deadline when the timer
# fires has run out of time (asyncio.timeout's timer rounds the same way).
TIMER_RESOLUTION_S = 0.001
Reply = Any  # what hiredis parses: bytes, int, None, nested lists, or an error instance
# Idle this long, a connection is PINGed before its next use (redis-py's pools use the same 10 s,
# shoplib.store.connections): long enough that a busy connection never pays for it.
HEALTH_CHECK_INTERVAL_S = 10.0
# A PING costs Redis nothing: a reply slower than this means the connection, not the command, is
# stuck. Measured: 20,000 PINGs on a 2-core host at load average 13, p99.9 4 ms, slowest 155 ms;
# three times that slowest, and a quarter of the command timeout (2 s) a dead connection costs.
HEALTH_CHECK_TIMEOUT_S = 0.5


def keepalive_options() -> list[tuple[int, int, int]]:
    """(level, option, value) for setsockopt: keepalive as on every redis-py connection of ours
    (shoplib.store.connections.KEEPALIVE_*, with their reasons)."""
    tuning = [(socket.IPPROTO_TCP, option, value) for option, value in connections.keepalive_tuning().items()]
    return [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1), *tuning]


def _packed(command: Sequence[Arg]) -> bytes:
    """One command in RESP, packed in C. (hiredis's stub types the argument as a 1-tuple; it
    takes a tuple of any length.)"""
    packed: bytes = hiredis.pack_command(cast("tuple[Arg]", tuple(command)))
    return packed


# Redis's answer to a connection over its `maxclients`, sent before it closes the connection.
_TOO_MANY_CLIENTS = "ERR max number of clients reached"


def _reply_error(message: str) -> Exception:
    """An error reply as redis-py would raise it, for the outage rules (first word = the code; a
    connection refused for too many clients is a connection error, as in redis-py)."""
    if message.startswith(_TOO_MANY_CLIENTS):
        return RedisConnectionError(message)
    return NoScriptError(message) if message.startswith("NOSCRIPT") else ResponseError(message)


# Pool settings (with their values that mean "not set") that the lean connection does not
# reproduce: with any of them set otherwise, the process keeps redis-py's client for everything.
_TLS_SETTINGS_NOT_CARRIED: dict[str, tuple[object, ...]] = {
    "ssl_ca_path": (None,), "ssl_ca_data": (None,),
    "ssl_cert_reqs": (None, "required", ssl.CERT_REQUIRED), "ssl_check_hostname": (None, True),
    "ssl_password": (None,), "ssl_min_version": (None,), "ssl_ciphers": (None,)}


@dataclass(frozen=True)
class Endpoint:
    """Where and as whom to connect: taken from a redis-py client's pool, so it is the same Redis,
    user, password and TLS settings every other client of the process uses."""

    host: str
    port: int
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never in a log line or an assertion
    tls_ca_file: str | None = None
    tls: bool = False
    credential_provider: CredentialProvider | None = field(default=None, repr=False)  # instead of the two above
    tls_cert_file: str | None = None  # the client certificate, for a Redis that asks for one
    tls_key_file: str | None = None

    @classmethod
    def of(cls, client: aioredis.Redis) -> Endpoint | None:
        """The client's endpoint, or None where this connection does not apply (a Unix socket, a
        cluster client: its commands must follow slots)."""
        if isinstance(client, RedisCluster):
            return None
        pool = client.connection_pool
        if pool.connection_class not in (Connection, SSLConnection, FreshTlsConnection):
            return None
        kwargs = pool.connection_kwargs
        if any(kwargs.get(name) not in absent for name, absent in _TLS_SETTINGS_NOT_CARRIED.items()):
            return None  # a TLS setting this connection does not reproduce: keep redis-py's
        return cls(str(kwargs.get("host", "localhost")), int(kwargs.get("port", 6379)), int(kwargs.get("db", 0)),
                   kwargs.get("username"), kwargs.get("password"), kwargs.get("ssl_ca_certs"),
                   pool.connection_class is not Connection, kwargs.get("credential_provider"),
                   kwargs.get("ssl_certfile"), kwargs.get("ssl_keyfile"))

    def login(self) -> tuple[str | None, str | None]:
        """(user, password) for AUTH at this connect: from the credential provider when there is
        one (a password file, read now: a rotated password is used by the next connection)."""
        if self.credential_provider is None:
            return self.username, self.password
        found = self.credential_provider.get_credentials()
        return (None, found[0]) if len(found) == 1 else (found[0], found[1])

    def ssl_context(self) -> ssl.SSLContext | None:
        """rediss://: the server's certificate checked against the CA and its host name, and our
        own certificate where one is set; all read from their files now, at this connect."""
        if not self.tls:
            return None
        note_tls(self.tls_ca_file, self.tls_cert_file)
        context = ssl.create_default_context(cafile=self.tls_ca_file)
        if self.tls_cert_file:
            context.load_cert_chain(self.tls_cert_file, self.tls_key_file)
        return context


@dataclass(eq=False)
class _Batch:
    """Commands sent in one write, waiting for their replies."""

    future: asyncio.Future[list[Reply]]
    expected: int
    deadline: float  # loop time (s) by which the last reply must have come
    replies: list[Reply] = field(default_factory=list)


class _Protocol(asyncio.Protocol):
    """Replies parsed as they arrive and collected for the oldest batch; one timer for the whole
    connection, armed for the oldest batch's deadline (not re-armed per batch: it checks the oldest
    when it fires, and arms itself again only while batches wait)."""

    def __init__(self) -> None:
        self._parser = hiredis.Reader(replyError=_reply_error)
        self.waiting: deque[_Batch] = deque()
        self.transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0  # loop time (s) the timer fires at
        self.last_sent = 0.0  # loop time (s) of the last batch sent
        self._loop: asyncio.AbstractEventLoop | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a stream transport (uvloop's is not a subclass)
        self._loop = asyncio.get_running_loop()
        self.last_sent = self._loop.time()
        sock = transport.get_extra_info("socket")  # under TLS too: the TCP socket beneath
        for level, option, value in keepalive_options() if sock is not None else ():
            sock.setsockopt(level, option, value)

    def usable(self, idle_limit_s: float | None) -> bool:
        """Open, and not idle for longer than `idle_limit_s` (None: no limit). While replies are
        owed it is in use, not idle. One call on the hot path: checked before every batch."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return False
        return idle_limit_s is None or bool(self.waiting) or \
            cast(asyncio.AbstractEventLoop, self._loop).time() - self.last_sent <= idle_limit_s

    def send(self, payload: bytes, expected: int, timeout_s: float) -> asyncio.Future[list[Reply]]:
        if self.transport is None or self.transport.is_closing():
            raise RedisConnectionError("connection to Redis closed")
        loop = asyncio.get_running_loop()
        self.last_sent = now = loop.time()
        batch = _Batch(loop.create_future(), expected, now + timeout_s)
        self.waiting.append(batch)
        self.transport.write(payload)
        if self._timer is None:
            self._timer, self._timer_at = loop.call_at(batch.deadline, self._expire), batch.deadline
        elif len(self.waiting) == 1 and self._timer_at > batch.deadline:
            # The oldest batch now, with a shorter deadline than the one the timer was left
            # armed for (a health check's PING): armed anew, or it would fire late.
            self._timer.cancel()
            self._timer, self._timer_at = loop.call_at(batch.deadline, self._expire), batch.deadline
        return batch.future

    def data_received(self, data: bytes) -> None:
        self._parser.feed(data)
        while (reply := self._parser.gets()) is not False:
            if not self.waiting:  # a reply nobody asked for: the stream is out of step
                return self.abort(RedisConnectionError(f"unexpected reply from Redis: {str(reply)[:100]}"))
            batch = self.waiting[0]
            batch.replies.append(reply)
            if len(batch.replies) == batch.expected:
                self.waiting.popleft()
                if not batch.future.done():  # its caller may have given up (cancelled)
                    batch.future.set_result(batch.replies)

    def _expire(self) -> None:
        self._timer = None
        if not self.waiting:
            return
        loop = asyncio.get_running_loop()
        if self.waiting[0].deadline > loop.time() + TIMER_RESOLUTION_S:
            self._timer_at = self.waiting[0].deadline
            self._timer = loop.call_at(self._timer_at, self._expire)
            return
        self.abort(RedisTimeoutError("no reply from Redis within the command timeout"))

    def abort(self, error: Exception) -> None:
        """Fail every waiting batch with `error` and close the connection (a later reply could no
        longer be matched to its command)."""
        self._fail(error)
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._fail(RedisConnectionError(f"connection to Redis lost ({type(exc).__name__ if exc else 'closed'})"))

    def _fail(self, error: Exception) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self.waiting:
            batch = self.waiting.popleft()
            if not batch.future.done():
                batch.future.set_exception(error)


def _is_open(protocol: _Protocol | None) -> bool:
    return protocol is not None and protocol.transport is not None and not protocol.transport.is_closing()


_PING = _packed(("PING",))
# The lean connections made from each redis-py client (RedisPipe.of), for close_all on stop.
_OWNED: weakref.WeakKeyDictionary[aioredis.Redis, weakref.WeakSet[RedisPipe]] = weakref.WeakKeyDictionary()


async def close_all(client: aioredis.Redis) -> None:
    """Close every lean connection made from `client` (a service's stop); a later use reopens one."""
    for pipe in list(_OWNED.get(client, ())):
        await pipe.close()


class RedisPipe:
    """One connection; `execute` sends a batch of commands in one write and returns their replies
    in order, an error reply as its exception instance (not raised).

    Raises ConnectionError when Redis cannot be reached or the connection is lost before every
    reply came, TimeoutError when the replies take longer than `timeout_s` (seconds). With
    `drop_on_cancel` (a connection for blocking reads) a caller cancelled while it waits drops the
    connection, so a blocked read does not hold up the next command; without it (a connection
    shared by many callers) the replies of a cancelled caller are read and thrown away.
    `health_check_interval_s`: idle this long (seconds), the connection is PINGed before use;
    None: never (a control for the tests)."""

    def __init__(self, endpoint: Endpoint, timeout_s: float = SOCKET_TIMEOUT_S, drop_on_cancel: bool = False,
                 health_check_interval_s: float | None = HEALTH_CHECK_INTERVAL_S) -> None:
        self._endpoint, self._timeout_s, self._drop_on_cancel = endpoint, timeout_s, drop_on_cancel
        self._interval_s = health_check_interval_s
        self._protocol: _Protocol | None = None
        self._connecting = asyncio.Lock()

    @classmethod
    def of(cls, client: aioredis.Redis, timeout_s: float = SOCKET_TIMEOUT_S,
           drop_on_cancel: bool = False) -> RedisPipe | None:
        """A lean connection to `client`'s Redis, owned by `client` (closed by close_all(client)),
        or None where it does not apply (Endpoint.of)."""
        endpoint = Endpoint.of(client)
        if endpoint is None:
            return None
        pipe = cls(endpoint, timeout_s, drop_on_cancel)
        _OWNED.setdefault(client, weakref.WeakSet()).add(pipe)
        return pipe

    @property
    def tcp_socket(self) -> socket.socket | None:
        """The open connection's socket (to inspect its options), or None while there is none."""
        protocol = self._protocol
        if protocol is None or protocol.transport is None:
            return None
        return cast("socket.socket | None", protocol.transport.get_extra_info("socket"))

    def send_now(self, commands: Sequence[Sequence[Arg]]) -> asyncio.Future[list[Reply]] | None:
        """As `execute`, without waiting: the future of the replies (or of the error), or None
        when the connection is not open or is due a health check (`execute` does both)."""
        protocol = self._protocol
        if protocol is None or not protocol.usable(self._interval_s):
            return None
        return protocol.send(b"".join([_packed(command) for command in commands]), len(commands), self._timeout_s)

    async def execute(self, commands: Sequence[Sequence[Arg]]) -> list[Reply]:
        protocol, checked_s = await self._connected()
        payload = b"".join([_packed(command) for command in commands])
        # A health check's wait comes out of the command's timeout: a call never takes longer
        # than it did without the check (the connect aside, as before).
        future = protocol.send(payload, len(commands), self._timeout_s - checked_s)
        if not self._drop_on_cancel:
            return await future
        try:
            return await future
        except asyncio.CancelledError:
            self._drop(protocol, RedisConnectionError("connection dropped: its caller gave up waiting"))
            raise

    async def close(self) -> None:
        if self._protocol is not None:
            self._drop(self._protocol, RedisConnectionError("connection closed by its owner"))

    def _drop(self, protocol: _Protocol, error: Exception) -> None:
        protocol.abort(error)
        if self._protocol is protocol:
            self._protocol = None

    async def _connected(self) -> tuple[_Protocol, float]:
        """An open connection, and the seconds a health check took on the way (0 mostly)."""
        protocol = self._protocol
        if protocol is not None and protocol.usable(self._interval_s):
            return protocol, 0.0
        checked_s = 0.0
        async with self._connecting:  # one check or connect at a time; the others wait for it
            protocol = self._protocol
            if protocol is not None and _is_open(protocol) and not protocol.usable(self._interval_s):
                checked_s = await self._check(protocol)  # open but idle too long
            if not _is_open(self._protocol):
                self._protocol = await self._connect()
        assert self._protocol is not None
        return self._protocol, min(checked_s, HEALTH_CHECK_TIMEOUT_S)

    async def _check(self, protocol: _Protocol) -> float:
        """PING after idling; no PONG in time (or the connection lost): dropped, to be reopened.
        An error reply (BUSY, LOADING) is an answer: the connection itself works. Returns the
        seconds it took."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await protocol.send(_PING, 1, HEALTH_CHECK_TIMEOUT_S)
        except (RedisConnectionError, RedisTimeoutError):
            self._drop(protocol, RedisConnectionError("connection dropped: no answer to PING after idling"))
        return loop.time() - started

    async def _connect(self) -> _Protocol:
        end = self._endpoint
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                _, protocol = await loop.create_connection(_Protocol, end.host, end.port, ssl=end.ssl_context())
                await self._hello(protocol)
        except (OSError, TimeoutError) as exc:
            raise RedisConnectionError(f"cannot connect to Redis at {end.host}:{end.port} "
                                       f"({type(exc).__name__})") from None
        return protocol

    async def _hello(self, protocol: _Protocol) -> None:
        """AUTH and SELECT as the pool's connections do; a refusal closes the connection and is raised."""
        end = self._endpoint
        setup: list[tuple[Arg, ...]] = []
        try:
            username, password = end.login()
        except RedisConnectionError as exc:  # the password file unreadable now: an outage, retried
            protocol.abort(exc)
            raise
        if password is not None:
            setup.append(("AUTH", username, password) if username else ("AUTH", password))
        if end.db:
            setup.append(("SELECT", end.db))
        if not setup:
            return
        for reply in await protocol.send(b"".join([_packed(command) for command in setup]), len(setup),
                                         CONNECT_TIMEOUT_S):
            if isinstance(reply, Exception):  # refused: as redis-py's pool raises it (an outage)
                error = (AuthenticationError(str(reply)) if str(reply).startswith(("WRONGPASS", "NOAUTH"))
                         else RedisConnectionError(str(reply)))
                protocol.abort(error)
                raise error
