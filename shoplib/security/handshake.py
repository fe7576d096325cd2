"""A refused TLS handshake, told apart from a service that is down.

grpcio reports both as UNAVAILABLE; only the details differ. When our client refuses the server
they name the TLS error ("Ssl handshake failed", "CERTIFICATE_VERIFY_FAILED", "Hostname Verification
Check failed" for a server that is not the one the channel is pinned to); when the server
refuses our certificate (TLS 1.3 sends that verdict after the client's side of the handshake)
the client only sees the connection closed while connecting, where a down service refuses the
connection and a hung one times out. Either does not heal by retrying: a certificate, CA or
identity is wrong, so it becomes INTERNAL naming the service, and the log says what gRPC reported
(the server's own log names the reason: PEER_DID_NOT_RETURN_A_CERTIFICATE, certificate has expired...).
"""

from __future__ import annotations

import re

import grpc

from shoplib import errors, log, security

_logger = log.get("shoplib.security.handshake")
# What grpcio's details say when TLS, not the network, refused the connection.
_TLS_REFUSAL = re.compile(r"handshake|SSL_ERROR|CERTIFICATE_VERIFY|tlsv1 alert|peer name|verification check failed",
                          re.IGNORECASE)
# The server closed the connection before any call got through (both phrasings of grpcio's pick-first policy).
_CLOSED_WHILE_CONNECTING = re.compile(r"(failed to connect|connections to all backends failing).*Socket closed",
                                      re.IGNORECASE | re.DOTALL)
MAX_DETAIL_CHARS = 300  # of grpcio's details in the log line: the reason, not a page


class HandshakeRefused(errors.ServiceError):
    """Our call to a service failed in the TLS handshake: a configuration error on one side."""

    code = "INTERNAL"


def _tls_refusal(details: str) -> bool:
    return bool(_TLS_REFUSAL.search(details) or (security.enabled() and _CLOSED_WHILE_CONNECTING.search(details)))


def refused(service: str, exc: grpc.aio.AioRpcError) -> HandshakeRefused | None:
    details = exc.details() or ""
    if exc.code() is not grpc.StatusCode.UNAVAILABLE or not _tls_refusal(details):
        return None
    _logger.error("security.handshake_refused", peer_service=service, detail=details[:MAX_DETAIL_CHARS])
    return HandshakeRefused(f"the TLS handshake with the {service} service was refused (certificate, CA or "
                            "identity mismatch): a configuration error, not an outage")
