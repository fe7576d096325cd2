"""Certificates for the security tests, made with trustme: the certs/ layout of `make certs`
(a CA, every identity, the token keys) and what an attacker would present (another CA's
certificate, an expired one)."""

from __future__ import annotations

import datetime
from pathlib import Path

import trustme
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from shoplib.security import files
from shoplib.security.identities import CERTIFICATES

ONE_HOUR = datetime.timedelta(hours=1)


def new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def private_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def write_leaf(directory: Path, name: str, ca: trustme.CA, identity: str, *,
               expired: bool = False, lifetime_s: float | None = None) -> tuple[Path, Path]:
    """A certificate for `identity` issued by `ca` (expired an hour ago when asked, or valid for
    `lifetime_s` from now): (cert, key) files, the certificate written first (as a renewal would)."""
    now = datetime.datetime.now(datetime.UTC)
    window = {"not_before": now - 2 * ONE_HOUR, "not_after": now - ONE_HOUR} if expired else {}
    if lifetime_s is not None:
        window = {"not_before": now - ONE_HOUR, "not_after": now + datetime.timedelta(seconds=lifetime_s)}
    names = [identity] if identity == "client" else [identity, "localhost", "127.0.0.1"]
    leaf = ca.issue_cert(*names, **window)  # type: ignore[arg-type]
    cert, key = directory / f"{name}.pem", directory / f"{name}-key.pem"
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    key.write_bytes(leaf.private_key_pem.bytes())
    return cert, key


def write_certs(directory: Path, ca: trustme.CA) -> Path:
    """The layout `make certs` writes, issued by `ca`: ca.pem, every identity, the token keys."""
    directory.mkdir(parents=True, exist_ok=True)
    ca.cert_pem.write_to_path(str(directory / files.CA))
    for identity in CERTIFICATES:
        write_leaf(directory, identity, ca, identity)
    signing = new_key()
    (directory / files.JWT_SIGNING_KEY).write_bytes(private_pem(signing))
    (directory / files.JWT_PUBLIC_KEY).write_bytes(signing.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return directory
