"""Where the secure profile's files are: named by settings, defaulting to the `make certs` layout.

A deployment mounts its own and names them: TLS_CA_FILE, TLS_CERT_FILE, TLS_KEY_FILE (this
process's certificate), JWT_PUBLIC_KEY_FILE or JWT_JWKS_FILE (token keys), REDIS_PASSWORD_FILE.
Without them, CERTS_DIR (default certs/) holds ca.pem, <identity>.pem and <identity>-key.pem.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from shoplib import config

CA = "ca.pem"
JWT_SIGNING_KEY = "jwt-signing-key.pem"  # development only: `make token` signs with it
JWT_PUBLIC_KEY = "jwt-public.pem"


def certs_dir() -> Path:
    return Path(os.environ.get("CERTS_DIR", "").strip() or "certs")


def read(path: Path, setting: str) -> bytes:
    """The bytes of a file named by `setting`; a missing one stops the process naming both."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise config.ConfigError(f"{setting}: cannot read {path} ({exc.strerror}); `make certs` writes "
                                 "development files into certs/") from None


@dataclass(frozen=True)
class TlsFiles:
    """The CA that callers and servers must be issued by, and this process's certificate and key."""

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def from_env(cls, identity: str) -> TlsFiles:
        base = certs_dir()
        return cls(ca=config.optional("TLS_CA_FILE", base / CA, Path),
                   cert=config.optional("TLS_CERT_FILE", base / f"{identity}.pem", Path),
                   key=config.optional("TLS_KEY_FILE", base / f"{identity}-key.pem", Path))

    def load(self) -> tuple[bytes, bytes, bytes]:
        """(ca, certificate chain, private key) as PEM bytes."""
        return (read(self.ca, "TLS_CA_FILE"), read(self.cert, "TLS_CERT_FILE"), read(self.key, "TLS_KEY_FILE"))
