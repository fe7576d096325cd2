"""Consumer tunables, each with the reason for its default; overridable by STREAM_* variables."""

from __future__ import annotations

import math
from dataclasses import dataclass

from shoplib import config

DEAD_LETTERS = "dead-letters"


@dataclass(frozen=True)
class ConsumerSettings:
    # Entries read per XREADGROUP, and so the most worked on at once: never read more than we can work.
    batch: int = 64
    # How long a read waits for new entries; also how quickly a stop request is noticed.
    block_ms: int = 1000
    # An entry pending longer than this belongs to a dead or stuck consumer and is reclaimed.
    claim_idle_ms: int = 10_000
    # How often a consumer looks for stale entries (reclaim), idle consumers and trimming.
    maintenance_interval_s: float = 2.0
    # Deliveries after which an entry that keeps failing goes to the dead letters.
    max_deliveries: int = 5
    # Fully processed entries younger than this are kept (readable trail, re-reads); older ones are trimmed.
    retain_ms: int = 300_000
    # A consumer idle this long with nothing pending is removed from its group.
    consumer_idle_delete_ms: int = 3_600_000

    def __post_init__(self) -> None:
        positive = {"STREAM_BATCH": self.batch, "STREAM_BLOCK_MS": self.block_ms,
                    "STREAM_MAX_DELIVERIES": self.max_deliveries, "STREAM_MAINTENANCE_S": self.maintenance_interval_s,
                    "STREAM_CONSUMER_IDLE_DELETE_MS": self.consumer_idle_delete_ms}
        for name, value in {**positive, "STREAM_RETAIN_MS": self.retain_ms + 1}.items():
            if not 0 < value < math.inf:  # also refuses nan and inf (inf would mean: never maintained)
                raise config.ConfigError(f"{name}={value} must be a positive finite number")
        if self.claim_idle_ms < 3 * self.block_ms:
            raise config.ConfigError("STREAM_CLAIM_IDLE_MS must be at least 3 x STREAM_BLOCK_MS")

    @property
    def handler_timeout_s(self) -> float:
        """A handler is cut off well before its entry could be reclaimed, so an entry that is
        still being worked on is never handed to a second consumer."""
        return self.claim_idle_ms / 1000 / 3

    @classmethod
    def from_env(cls) -> ConsumerSettings:
        default = cls()
        return cls(
            batch=config.optional("STREAM_BATCH", default.batch, int),
            block_ms=config.optional("STREAM_BLOCK_MS", default.block_ms, int),
            claim_idle_ms=config.optional("STREAM_CLAIM_IDLE_MS", default.claim_idle_ms, int),
            maintenance_interval_s=config.optional("STREAM_MAINTENANCE_S", default.maintenance_interval_s, float),
            max_deliveries=config.optional("STREAM_MAX_DELIVERIES", default.max_deliveries, int),
            retain_ms=config.optional("STREAM_RETAIN_MS", default.retain_ms, int),
            consumer_idle_delete_ms=config.optional("STREAM_CONSUMER_IDLE_DELETE_MS",
                                                    default.consumer_idle_delete_ms, int),
        )
