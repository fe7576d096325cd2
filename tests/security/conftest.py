"""The secure profile for this package's in-process services: a trustme CA, the certs/ layout
issued by it, and SECURE=1 with CERTS_DIR pointing there (for this process, so for every
service started in it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from shopctl.secure_redis import SecureRedis
from tests.security.certs import write_certs


@pytest.fixture(scope="package")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="package")
def certs_dir(tmp_path_factory: pytest.TempPathFactory, ca: trustme.CA) -> Iterator[Path]:
    directory = write_certs(tmp_path_factory.mktemp("certs"), ca)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("SECURE", "1")
        env.setenv("CERTS_DIR", str(directory))
        yield directory


@pytest.fixture(scope="module")
def tls_redis(certs_dir: Path) -> Iterator[SecureRedis]:
    """A private redis-server with TLS only and the ACL users, certificates from `certs_dir`
    (one per test module; TlsUnavailable where no TLS-capable redis-server 7+ is found)."""
    secured = SecureRedis(tls=True).start()
    try:
        yield secured
    finally:
        secured.close()
