"""A client channel that follows its TLS files: renewed on disk, used from the next call on.

grpc-python reads a channel's credentials once, when the channel is made, and has no hook to
reload them; a service's channels live as long as the process, so a renewed client certificate
or CA would be ignored until a restart (issue 19, case 4). A RenewingChannel reads the files
again (three small reads) at most every LOOK_INTERVAL_S, at call time; when they changed and
make a whole credential (shoplib.security.tls.load), the next calls go to a
new channel built from them, and the previous one is closed after the calls in flight on it
finished (at most DRAIN_S). Stubs made on a RenewingChannel need not be made again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import grpc

from shoplib import log
from shoplib.security import tls
from shoplib.security.files import TlsFiles

# How often a call looks at the files: a renewal is used within a second; a look costs ~30 µs.
LOOK_INTERVAL_S = 1.0
# A replaced channel finishes the calls in flight on it for at most this long before it is
# closed: longer than any unary deadline; a WatchOrder stream still open then ends (its caller resumes it).
DRAIN_S = 300.0
_logger = log.get("shoplib.security.renewing_channel")
Build = Callable[[tls.Material], grpc.aio.Channel]


class RenewingChannel(grpc.aio.Channel):
    """A grpc.aio.Channel whose TLS credential is rebuilt from `files` when they are renewed.
    `build` makes the real channel from the material; `owner` names the credential in the
    expiry metric and logs. Raises config.ConfigError at construction if the files are unusable."""

    def __init__(self, files: TlsFiles, owner: str, build: Build) -> None:
        self._files, self._owner, self._build = files, owner, build
        material = tls.load_at_start(files, owner)
        self._in_use = (material.ca, material.chain, material.key)
        self._current = build(material)
        self._callables: dict[tuple[Any, ...], Any] = {}
        self._draining: dict[asyncio.Task[None], grpc.aio.Channel] = {}  # replaced channels, closing
        self._next_look = time.monotonic() + LOOK_INTERVAL_S

    def current(self) -> grpc.aio.Channel:
        """The channel for a call starting now (renewed first when the files changed)."""
        now = time.monotonic()
        if now >= self._next_look:
            self._next_look = now + LOOK_INTERVAL_S
            self._renew_if_changed()
        return self._current

    def _renew_if_changed(self) -> None:
        try:
            raw = tls.read(self._files)
            if raw == self._in_use:
                return
            material = tls.checked(self._files, raw, self._owner)
        except tls.Unsettled as exc:  # mid-renewal: the previous credential stays in use
            _logger.warning("tls.renewal_waiting", credential=self._owner, error=str(exc))
            return
        previous, self._current, self._in_use = self._current, self._build(material), raw
        self._callables.clear()
        self._drain(previous)
        _logger.info("tls.channel_renewed", credential=self._owner, cert=str(self._files.cert))

    def _drain(self, channel: grpc.aio.Channel) -> None:
        task = asyncio.get_running_loop().create_task(channel.close(DRAIN_S))
        self._draining[task] = channel
        task.add_done_callback(lambda done: self._draining.pop(done, None))

    def callable_for(self, kind: str, arguments: tuple[Any, ...]) -> Any:
        """The current channel's multicallable of `kind` ("unary_unary", ...) for these arguments."""
        channel = self.current()
        key = (kind, *arguments)
        found = self._callables.get(key)
        if found is None:
            found = self._callables[key] = getattr(channel, kind)(*arguments)
        return found

    async def close(self, grace: float | None = None) -> None:
        """Close the current channel and those still draining, each within `grace` (None: at once)."""
        draining = dict(self._draining)
        await asyncio.gather(self._current.close(grace), *(channel.close(grace) for channel in draining.values()))
        for task in draining:
            task.cancel()
        await asyncio.gather(*draining, return_exceptions=True)

    async def __aenter__(self) -> RenewingChannel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close(None)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self.current().get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self.current().wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self.current().channel_ready()

    def unary_unary(self, method: str, request_serializer: Any = None, response_deserializer: Any = None,
                    _registered_method: bool | None = False) -> _UnaryUnary:
        return _UnaryUnary(self, "unary_unary", (method, request_serializer, response_deserializer, _registered_method))

    def unary_stream(self, method: str, request_serializer: Any = None, response_deserializer: Any = None,
                     _registered_method: bool | None = False) -> _UnaryStream:
        return _UnaryStream(self, "unary_stream",
                            (method, request_serializer, response_deserializer, _registered_method))

    def stream_unary(self, method: str, request_serializer: Any = None, response_deserializer: Any = None,
                     _registered_method: bool | None = False) -> _StreamUnary:
        return _StreamUnary(self, "stream_unary",
                            (method, request_serializer, response_deserializer, _registered_method))

    def stream_stream(self, method: str, request_serializer: Any = None, response_deserializer: Any = None,
                      _registered_method: bool | None = False) -> _StreamStream:
        return _StreamStream(self, "stream_stream",
                             (method, request_serializer, response_deserializer, _registered_method))


class _Renewing:
    """A stub's method: each call goes to the channel current when it starts."""

    def __init__(self, channel: RenewingChannel, kind: str, arguments: tuple[Any, ...]) -> None:
        self._channel, self._kind, self._arguments = channel, kind, arguments

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._channel.callable_for(self._kind, self._arguments)(*args, **kwargs)


class _UnaryUnary(_Renewing, grpc.aio.UnaryUnaryMultiCallable[Any, Any]):
    pass


class _UnaryStream(_Renewing, grpc.aio.UnaryStreamMultiCallable[Any, Any]):
    pass


class _StreamUnary(_Renewing, grpc.aio.StreamUnaryMultiCallable[Any, Any]):
    pass


class _StreamStream(_Renewing, grpc.aio.StreamStreamMultiCallable[Any, Any]):
    pass
