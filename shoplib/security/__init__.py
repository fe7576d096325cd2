"""The secure profile (SECURE=1): mTLS between services, bearer tokens at the gateway, and one
least-privilege Redis ACL user per service. Off by default: the demos run plaintext on loopback."""

from __future__ import annotations

import os


def enabled() -> bool:
    """SECURE=1 (or true/yes) switches the whole profile on."""
    return os.environ.get("SECURE", "").strip().lower() in ("1", "true", "yes")
