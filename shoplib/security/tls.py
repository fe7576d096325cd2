"""TLS credentials from files named by settings (shoplib.security.files), reloaded when renewed.

Servers re-read their certificate when its files change: gRPC asks for the configuration at each
new handshake, so a rotated certificate or CA is served without a restart (connections already
open keep the one they were made with). Channels do the same from their side
(shoplib.security.renewing_channel). Material is taken only when it is whole: a certificate whose
key does not match (a renewal caught between writing the two files) keeps the previous one in
use until the next look. Each certificate loaded is noted for its expiry (shoplib.security.expiry).
Channels pin the server's identity: a call to "payment" is made only to a server presenting the
payment certificate, whatever address it answers on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from shoplib import config, log
from shoplib.security import expiry
from shoplib.security.files import TlsFiles

_logger = log.get("shoplib.security.tls")


class Unsettled(Exception):
    """The files do not make a usable credential (yet): unreadable, unparseable or mismatched."""


@dataclass(frozen=True)
class Material:
    """PEM bytes of one consistent set: the CA bundle, this process's chain and its key."""

    ca: bytes
    chain: bytes
    key: bytes


def read(files: TlsFiles) -> tuple[bytes, bytes, bytes]:
    """The files' bytes (CA, chain, key), compared whole to tell a renewal: three small reads
    (~30 µs), where a stamp (mtime, size) misses a same-size rewrite within the clock's granularity.
    Raises Unsettled naming a file that cannot be read."""
    try:
        return files.ca.read_bytes(), files.cert.read_bytes(), files.key.read_bytes()
    except OSError as exc:
        raise Unsettled(f"cannot read {exc.filename} ({exc.strerror})") from None


def _public(pem_key: bytes, pem_chain: bytes) -> tuple[bytes, bytes]:
    key = serialization.load_pem_private_key(pem_key, password=None)
    leaf = x509.load_pem_x509_certificates(pem_chain)[0]
    encode = (serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key.public_key().public_bytes(*encode), leaf.public_key().public_bytes(*encode)


def checked(files: TlsFiles, raw: tuple[bytes, bytes, bytes], owner: str) -> Material:
    """The material of `raw` (read from `files`), checked whole, its expiry noted as "<owner>.cert"
    and "<owner>.ca". Raises Unsettled naming the files at fault (never their content)."""
    ca, chain, key = raw
    try:
        of_key, of_cert = _public(key, chain)
        expiry.earliest_expiry(ca)  # the CA bundle holds certificates
    except (ValueError, TypeError) as exc:  # cryptography: not PEM, no certificate, an encrypted key
        raise Unsettled(f"{files.cert} / {files.key} / {files.ca}: not a PEM certificate, key and CA "
                        f"({type(exc).__name__})") from None
    if of_key != of_cert:
        raise Unsettled(f"{files.key} is not the key of {files.cert}")
    expiry.note(f"{owner}.ca", ca)
    expiry.note(f"{owner}.cert", chain)
    return Material(ca, chain, key)


def load(files: TlsFiles, owner: str) -> Material:
    """The files' material as they are now, checked whole (see `checked`); raises Unsettled."""
    return checked(files, read(files), owner)


def load_at_start(files: TlsFiles, owner: str) -> Material:
    """load() at start: unusable files stop the process, naming them (`make certs` writes development ones)."""
    try:
        return load(files, owner)
    except Unsettled as exc:
        raise config.ConfigError(f"TLS_CA_FILE / TLS_CERT_FILE / TLS_KEY_FILE: {exc}; `make certs` writes "
                                 "development files into certs/") from None


def _configuration(material: Material) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration([(material.key, material.chain)], root_certificates=material.ca)


class _Reloader:
    """gRPC's certificate fetcher: a new configuration when a file changed since last time, else None."""

    def __init__(self, files: TlsFiles, owner: str, started: Material) -> None:
        self._files, self._owner, self._in_use = files, owner, (started.ca, started.chain, started.key)

    def __call__(self) -> grpc.ServerCertificateConfiguration | None:
        try:
            raw = read(self._files)
            if raw == self._in_use:
                return None
            configuration = _configuration(checked(self._files, raw, self._owner))
        except Unsettled as exc:  # mid-rotation: keep serving the previous certificate
            _logger.warning("tls.reload_failed", error=str(exc))
            return None
        self._in_use = raw
        _logger.info("tls.reloaded", cert=str(self._files.cert))
        return configuration


def server_credentials(files: TlsFiles, require_client_auth: bool = True,
                       owner: str = "server") -> grpc.ServerCredentials:
    """TLS for a server; with `require_client_auth`, a caller without a certificate from the CA
    is refused during the handshake (mTLS). Renewed files are served from the next handshake on."""
    material = load_at_start(files, owner)
    # grpcio's stub types the fetcher as never returning None; grpcio documents None as "unchanged".
    fetch = cast(Callable[[], grpc.ServerCertificateConfiguration], _Reloader(files, owner, material))
    return grpc.dynamic_ssl_server_credentials(_configuration(material), fetch,
                                               require_client_authentication=require_client_auth)


def channel_credentials_of(material: Material) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(root_certificates=material.ca, private_key=material.key,
                                        certificate_chain=material.chain)


def channel_credentials(files: TlsFiles, owner: str = "client") -> grpc.ChannelCredentials:
    """TLS for a channel, presenting this process's certificate (its identity) to the server, as
    the files are now (a long-lived channel renews through shoplib.security.renewing_channel)."""
    return channel_credentials_of(load_at_start(files, owner))


def pinned(server_identity: str) -> list[tuple[str, str]]:
    """Channel options that accept only a server whose certificate names `server_identity`."""
    return [("grpc.ssl_target_name_override", server_identity)]
