"""TLS credentials from files named by settings (shoplib.security.files).

Servers re-read their certificate when its files change: gRPC asks for the configuration at each
new handshake, so a rotated certificate is served without a restart (connections already open
keep the one they were made with). Channels pin the server's identity: a call to "payment" is
made only to a server presenting the payment certificate, whatever address it answers on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import grpc

from shoplib import log
from shoplib.security.files import TlsFiles

_logger = log.get("shoplib.security.tls")


def _configuration(files: TlsFiles) -> grpc.ServerCertificateConfiguration:
    ca, chain, key = files.load()
    return grpc.ssl_server_certificate_configuration([(key, chain)], root_certificates=ca)


class _Reloader:
    """gRPC's certificate fetcher: a new configuration when a file changed since last time, else None."""

    def __init__(self, files: TlsFiles) -> None:
        self._files, self._stamp = files, self._stamp_now(files)

    @staticmethod
    def _stamp_now(files: TlsFiles) -> tuple[int, ...]:
        return tuple(path.stat().st_mtime_ns for path in (files.ca, files.cert, files.key))

    def __call__(self) -> grpc.ServerCertificateConfiguration | None:
        try:
            stamp = self._stamp_now(self._files)
            if stamp == self._stamp:
                return None
            configuration = _configuration(self._files)
        except (OSError, SystemExit) as exc:  # mid-rotation: keep serving the previous certificate
            _logger.warning("tls.reload_failed", error=type(exc).__name__)
            return None
        self._stamp = stamp
        _logger.info("tls.reloaded", cert=str(self._files.cert))
        return configuration


def server_credentials(files: TlsFiles, require_client_auth: bool = True) -> grpc.ServerCredentials:
    """TLS for a server; with `require_client_auth`, a caller without a certificate from the CA
    is refused during the handshake (mTLS)."""
    # grpcio's stub types the fetcher as never returning None; grpcio documents None as "unchanged".
    fetch = cast(Callable[[], grpc.ServerCertificateConfiguration], _Reloader(files))
    return grpc.dynamic_ssl_server_credentials(_configuration(files), fetch,
                                               require_client_authentication=require_client_auth)


def channel_credentials(files: TlsFiles) -> grpc.ChannelCredentials:
    """TLS for a channel, presenting this process's certificate (its identity) to the server."""
    ca, chain, key = files.load()
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=chain)


def pinned(server_identity: str) -> list[tuple[str, str]]:
    """Channel options that accept only a server whose certificate names `server_identity`."""
    return [("grpc.ssl_target_name_override", server_identity)]
