"""Wires a service's stream consumer from its settings: the seam where a control run of the chaos
suite switches one of its protections off (shoplib.faults); in production it hands back the
real parts."""

from __future__ import annotations

import redis.asyncio as aioredis

from shoplib import catalogue, faults
from shoplib.commit import traced
from shoplib.commit.writes import Committer
from shoplib.store import connections
from shoplib.store.outage import StoreGate
from shoplib.streams import deadletter
from shoplib.streams.consumer import StreamConsumer, Subscription
from shoplib.streams.settings import ConsumerSettings


def connect(redis_url: str, client: aioredis.Redis, committer: Committer, subscription: Subscription,
            gate: StoreGate | None = None) -> StreamConsumer:
    """A consumer with settings from STREAM_* variables and its own connection for blocking reads."""
    settings = ConsumerSettings.from_env()
    reader = connections.blocking_client(redis_url, settings.block_ms / 1000)
    return StreamConsumer(client, reader, committer, subscription, settings, faults.gate(gate) if gate else None,
                          decode=faults.decoder(catalogue.decode), dead_letter=traced.dead_letter(
                              faults.dead_letter(deadletter.dead_letter)), parts=faults.consumer_parts())
