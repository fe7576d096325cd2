"""Notification service settings, from the environment; required ones have no default."""

from __future__ import annotations

from dataclasses import dataclass

from shoplib import config


@dataclass(frozen=True)
class Settings:
    port: int
    redis_url: str
    instance: str

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            port=config.port("NOTIFICATION_PORT", 50054),
            redis_url=config.required("REDIS_URL"),
            instance=config.optional("SERVICE_INSTANCE", "1", str),
        )
