"""The secure profile's hooks into shoplib.process.service and shoplib.calls.outbound: which
interceptors a server gets, how it listens, and how a service's channel is made.

Off (no SECURE=1): plaintext, no checks, exactly as before. On: every server listens with TLS
from the files its settings name; internal servers require a client certificate from the CA
and authorize callers per method; the gateway serves TLS to outside callers (no client
certificate needed) and checks their bearer token instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc

from shoplib import security
from shoplib.security import peers, tls
from shoplib.security.callers import TokenAuthentication
from shoplib.security.files import TlsFiles
from shoplib.security.identities import GATEWAY
from shoplib.security.renewing_channel import RenewingChannel

Options = Sequence[tuple[str, Any]]


def interceptors(service: str) -> list[grpc.aio.ServerInterceptor]:
    """Internal servers: who may call (certificate SAN, per method). The gateway: outside callers
    bring no certificate, their token says who the call is for (health and reflection stay open)."""
    if not security.enabled():
        return []
    if service == GATEWAY:
        from shoplib.security.auth import TokenSettings, TokenVerifier  # PyJWT: loaded by the secure gateway only
        return [TokenAuthentication(TokenVerifier(TokenSettings.from_env()))]
    return [peers.PeerAuthorization()]


def listen(server: grpc.aio.Server, service: str, address: str) -> int:
    """Bind `address` (TLS under the secure profile); the port bound, 0 when it could not be."""
    if not security.enabled():
        return server.add_insecure_port(address)
    credentials = tls.server_credentials(TlsFiles.from_env(service), require_client_auth=service != GATEWAY,
                                         owner=service)
    return server.add_secure_port(address, credentials)


def channel(address: str, options: Options, caller: str, server: str,
            interceptors: Sequence[grpc.aio.ClientInterceptor] | None = None) -> grpc.aio.Channel:
    """A channel from `caller` to `server` (service names): under the secure profile, presenting
    the caller's certificate and accepting only a server whose certificate names `server`; the
    certificate and CA are followed on disk (renewed, used from the next call on)."""
    if not security.enabled():
        return grpc.aio.insecure_channel(address, options=options, interceptors=interceptors)

    def build(material: tls.Material) -> grpc.aio.Channel:
        return grpc.aio.secure_channel(address, tls.channel_credentials_of(material),
                                       options=[*options, *tls.pinned(server)], interceptors=interceptors)

    return RenewingChannel(TlsFiles.from_env(caller), caller, build)
