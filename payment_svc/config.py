"""Payment service settings, from the environment; required ones have no default."""

from __future__ import annotations

from dataclasses import dataclass

from shoplib import config


@dataclass(frozen=True)
class Settings:
    port: int
    redis_url: str
    notification_addr: str
    instance: str
    # Orders whose total is above this (minor units) are declined: both outcomes on demand.
    decline_above_minor: int
    # Injected processing delay, to show what a slow dependency does to each mode.
    delay_ms: int
    # /metrics (Prometheus) on this port; 0: off (the default when built in-process, as the tests do).
    metrics_port: int = 0

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            port=config.port("PAYMENT_PORT", 50053),
            metrics_port=config.port("PAYMENT_METRICS_PORT", 9103),
            redis_url=config.redis_url("REDIS_URL"),
            notification_addr=config.required("NOTIFICATION_SERVICE_ADDR"),
            instance=config.optional("SERVICE_INSTANCE", "1", str),
            decline_above_minor=config.optional("PAYMENT_DECLINE_ABOVE_MINOR", 100_000, int),
            delay_ms=config.optional("PAYMENT_DELAY_MS", 0, int),
        )
