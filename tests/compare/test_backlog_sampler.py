"""The payment-down scenario's backlog sampler ends with its block even when the Redis client
swallows the cancellation (redis-py 8.1 loses one that lands while a command is on the wire:
the sampler then sampled for ever and `make compare` hung silently)."""

from __future__ import annotations

import asyncio
from typing import Any

from shopctl.compare import probes

STOP_BOUND_S = 5.0  # the sampler stops within one sampling period (0.1 s); this leaves room for a loaded host


FIRST_COMMAND_S = 1.0  # the first command outlasts the block, so the stop lands while it is on the wire
BLOCK_S = 0.3


class SwallowingClient:
    """A client twin whose commands swallow a cancellation, as redis-py's can; its first command
    is slow, so that the block's end (a cancellation) lands during it."""

    def __init__(self) -> None:
        self.calls = 0

    async def xinfo_groups(self, stream: str) -> list[dict[str, Any]]:
        self.calls += 1
        try:
            await asyncio.sleep(FIRST_COMMAND_S if self.calls == 1 else 0.001)
        except asyncio.CancelledError:
            pass  # lost, as redis-py loses it
        return [{"name": probes.PAYMENT_GROUP, "lag": 0, "pending": 0}]


async def _sample_briefly(client: SwallowingClient) -> int:
    async with probes.backlog_sampler(client, 0.0) as trace:  # type: ignore[arg-type]
        await asyncio.sleep(BLOCK_S)
    return len(trace.samples)


def test_the_sampler_stops_with_its_block_though_the_client_swallows_the_cancellation() -> None:
    client = SwallowingClient()
    samples = asyncio.run(asyncio.wait_for(_sample_briefly(client), STOP_BOUND_S))
    assert samples >= 1 and client.calls >= 1
