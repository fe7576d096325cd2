"""The stack under SECURE=1: a private Redis with one ACL user per service (shopctl.secure_redis),
and the channels the tools (stack health probes, demo, tests) open: TLS with their own
certificate, and a bearer token on every gateway call. Without SECURE=1 every function here
gives the plaintext twin."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc

from shopctl.secure_redis import SecureRedis, local_redis, service_env, tool_redis_kwargs
from shoplib import security
from shoplib.security import tls
from shoplib.security.files import TlsFiles
from shoplib.security.identities import HUMAN, OPS

__all__ = ["SecureRedis", "aio_channel", "human_channel", "local_redis", "service_env", "sync_channel",
           "tool_redis_kwargs"]

Options = Sequence[tuple[str, Any]]


def _credentials(identity: str) -> grpc.ChannelCredentials:
    return tls.channel_credentials(TlsFiles.from_env(identity))


def sync_channel(address: str, options: Options = (), identity: str = OPS) -> grpc.Channel:
    if not security.enabled():
        return grpc.insecure_channel(address, options=options)
    return grpc.secure_channel(address, _credentials(identity), options=options)


def aio_channel(address: str, options: Options = (), identity: str = OPS, token: str = "") -> grpc.aio.Channel:
    """A tool's channel; with `token`, every call carries `authorization: Bearer <token>`."""
    interceptors: list[grpc.aio.ClientInterceptor] | None = [UnaryToken(token), StreamToken(token)] if token else None
    if not security.enabled():
        return grpc.aio.insecure_channel(address, options=options)
    return grpc.aio.secure_channel(address, _credentials(identity), options=options, interceptors=interceptors)


def human_channel(address: str, token: str) -> grpc.aio.Channel:
    """What a person with the client certificate and a token opens (the demo does)."""
    return aio_channel(address, identity=HUMAN, token=token)


def with_token(details: grpc.aio.ClientCallDetails, token: str) -> grpc.aio.ClientCallDetails:
    metadata = grpc.aio.Metadata(*(details.metadata or ()), ("authorization", f"Bearer {token}"))
    return grpc.aio.ClientCallDetails(details.method, details.timeout, metadata, details.credentials,
                                      details.wait_for_ready)


class UnaryToken(grpc.aio.UnaryUnaryClientInterceptor):
    """Adds the bearer token to each unary call's metadata."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_unary_unary(self, continuation: Any, details: grpc.aio.ClientCallDetails, request: Any) -> Any:
        return await continuation(with_token(details, self._token), request)


class StreamToken(grpc.aio.UnaryStreamClientInterceptor):
    """Adds the bearer token to each server-streaming call's metadata (gRPC wants one class per kind)."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_unary_stream(self, continuation: Any, details: grpc.aio.ClientCallDetails,
                                     request: Any) -> Any:
        return await continuation(with_token(details, self._token), request)
