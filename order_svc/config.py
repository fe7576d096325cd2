"""Order service settings, from the environment; required ones have no default."""

from __future__ import annotations

from dataclasses import dataclass

from shoplib import config


@dataclass(frozen=True)
class Settings:
    port: int
    redis_url: str
    payment_addr: str
    notification_addr: str
    instance: str
    # A sync order still PENDING this long after creation is resumed by the reconciler.
    resume_after_ms: int = 10_000
    # An events order still PENDING this long after creation (or its last re-drive) is re-driven.
    redrive_after_ms: int = 60_000
    # /metrics (Prometheus) on this port; 0: off (the default when built in-process, as the tests do).
    metrics_port: int = 0

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            port=config.port("ORDER_PORT", 50052),
            metrics_port=config.port("ORDER_METRICS_PORT", 9102),
            redis_url=config.redis_url("REDIS_URL"),
            payment_addr=config.required("PAYMENT_SERVICE_ADDR"),
            notification_addr=config.required("NOTIFICATION_SERVICE_ADDR"),
            instance=config.optional("SERVICE_INSTANCE", "1", str),
            resume_after_ms=config.optional("ORDER_RESUME_AFTER_MS", 10_000, int),
            redrive_after_ms=config.optional("ORDER_REDRIVE_AFTER_MS", 60_000, int),
        )
