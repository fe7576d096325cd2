"""Who a process is to Redis: REDIS_USERNAME, with its password read from REDIS_PASSWORD_FILE
(never from the environment or the URL, so it is in no process listing and no log), and the CA
for `rediss://` (REDIS_TLS_CA_FILE). Read by shoplib.redis_conn for every client it makes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from shoplib import config


def username() -> str:
    return os.environ.get("REDIS_USERNAME", "").strip()


def connection_kwargs() -> dict[str, Any]:
    """Extra keyword arguments for every redis-py client this process makes (none by default)."""
    found: dict[str, Any] = {}
    if user := username():
        secret = config.required("REDIS_PASSWORD_FILE")
        try:
            found = {"username": user, "password": Path(secret).read_text().strip()}
        except OSError as exc:
            raise config.ConfigError(f"REDIS_PASSWORD_FILE: cannot read {secret} ({exc.strerror})") from None
    if ca := os.environ.get("REDIS_TLS_CA_FILE", "").strip():
        found["ssl_ca_certs"] = ca
    return found
