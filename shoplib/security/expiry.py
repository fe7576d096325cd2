"""How long each credential this process holds is still valid: a gauge and a warning before it expires.

Every certificate the process loads (its own, each CA it trusts) is noted here under a name
("order.cert", "order.ca", "redis.ca"). `shop_credential_expiry_seconds{credential=...}` is the
time left until its notAfter, read when scraped (negative once expired). A credential that enters
the warning window (CREDENTIAL_EXPIRY_WARN_S, default 7 days) is logged once
(`credential.expires_soon`), and once more when it has expired (`credential.expired`); a renewal
(a new notAfter under the same name) starts over. Certificate validity is wall-clock time by its
own definition (X.509 notAfter), so this is the one place that compares with `time.time()`.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from dataclasses import dataclass

from cryptography import x509
from prometheus_client import Gauge

from shoplib import config, log

WARN_WINDOW_S = 7 * 24 * 3600  # a week: time for a person to renew by hand when automation failed
CHECK_INTERVAL_S = 30.0  # how often the watcher looks: far below any window a deployment would set
_logger = log.get("shoplib.security.expiry")

EXPIRY_SECONDS = Gauge("shop_credential_expiry_seconds",
                       "Seconds until the credential's notAfter (negative: expired), read when scraped.",
                       ["credential"])


@dataclass
class _Held:
    not_after: float  # epoch seconds
    warned: bool = False
    expired: bool = False


_held: dict[str, _Held] = {}


def warn_window_s() -> float:
    """CREDENTIAL_EXPIRY_WARN_S: how long before its expiry a credential is warned about (seconds)."""
    window = config.optional("CREDENTIAL_EXPIRY_WARN_S", float(WARN_WINDOW_S), float)
    if window < 0:
        raise config.ConfigError(f"CREDENTIAL_EXPIRY_WARN_S must be 0 or more seconds, not {window}")
    return window


def earliest_expiry(pem: bytes) -> float:
    """The earliest notAfter (epoch seconds) of the certificates in a PEM bundle (a chain, a CA list).
    Raises ValueError when it holds no certificate."""
    certificates = x509.load_pem_x509_certificates(pem)
    return min(cert.not_valid_after_utc for cert in certificates).timestamp()


def note(credential: str, pem: bytes) -> float:
    """Record the certificates of `credential` as loaded now; their earliest notAfter (epoch s)."""
    not_after = earliest_expiry(pem)
    held = _held.get(credential)
    if held is None or held.not_after != not_after:
        _held[credential] = _Held(not_after)
        EXPIRY_SECONDS.labels(credential).set_function(lambda: not_after - time.time())
    check()
    return not_after


def check() -> None:
    """Log each held credential that entered the warning window or expired since the last check."""
    now, window = time.time(), warn_window_s()
    for credential, held in list(_held.items()):  # notes may come from gRPC's certificate-fetch thread
        left = held.not_after - now
        if left <= 0 and not held.expired:
            held.expired = held.warned = True
            _logger.error("credential.expired", credential=credential, not_after=_iso(held.not_after))
        elif left <= window and not held.warned:
            held.warned = True
            _logger.warning("credential.expires_soon", credential=credential, expires_in_s=round(left),
                            not_after=_iso(held.not_after))


def _iso(epoch_s: float) -> str:
    return datetime.datetime.fromtimestamp(epoch_s, datetime.UTC).isoformat(timespec="seconds")


async def watch() -> None:
    """Background job: check the held credentials every CHECK_INTERVAL_S (runs for ever)."""
    while True:
        check()
        await asyncio.sleep(CHECK_INTERVAL_S)
