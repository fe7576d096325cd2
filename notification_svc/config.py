"""Notification service settings, from the environment; required ones have no default."""

from __future__ import annotations

from dataclasses import dataclass

from shoplib import config


@dataclass(frozen=True)
class Settings:
    port: int
    redis_url: str
    instance: str
    # /metrics (Prometheus) on this port; 0: off (the default when built in-process, as the tests do).
    metrics_port: int = 0

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            port=config.port("NOTIFICATION_PORT", 50054),
            metrics_port=config.port("NOTIFICATION_METRICS_PORT", 9104),
            redis_url=config.redis_url("REDIS_URL"),
            instance=config.optional("SERVICE_INSTANCE", "1", str),
        )
