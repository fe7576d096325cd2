"""A service's Redis: the client, its outage gate, and the settings our guarantees rest on.

Exactly-once effects and "nothing acknowledged is lost" hold only while Redis never deletes our
keys on its own and keeps what it acknowledged. An evicting `maxmemory-policy` deletes once keys,
streams and groups under memory pressure (double charges, lost events, silently): a service
refuses to start on it, and turns NOT_SERVING if it appears later. No AOF (a restart loses
acknowledged writes) and a lax fsync weaken them: warned about once, loudly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from shoplib import log, redis_conn
from shoplib.grpc_server import StartRefused
from shoplib.health import Dependency
from shoplib.outage import StoreGate, write_probe

# The one maxmemory-policy under which Redis never deletes a key by itself.
SAFE_POLICY = "noeviction"
_logger = log.get("shoplib.store")


def unsafe_policy(memory_info: dict[str, object]) -> str | None:
    """Why the memory policy breaks our guarantees, or None when it does not."""
    policy = str(memory_info.get("maxmemory_policy", SAFE_POLICY))
    if policy == SAFE_POLICY:
        return None
    return (f"Redis maxmemory-policy is {policy!r}: under memory pressure Redis would delete once keys, "
            f"streams and consumer groups (double charges, lost events); set maxmemory-policy {SAFE_POLICY}")


@dataclass
class Store:
    client: aioredis.Redis
    gate: StoreGate
    _warned: bool = field(default=False, repr=False)
    _unsafe: str | None = field(default=None, repr=False)

    @classmethod
    def connect(cls, url: str, owner: str) -> Store:
        """`owner` names the probe key (health:<owner>), one per service instance."""
        client = redis_conn.connect(url)
        return cls(client, StoreGate(write_probe(client, f"health:{owner}")))

    def dependencies(self) -> list[Dependency]:
        """Readiness: Redis takes writes now (a write probe, not PING), and is still set up safely."""
        return [Dependency("redis", self.gate.check), Dependency("redis-settings", self.settings_hold)]

    async def settings_hold(self) -> None:
        reason = unsafe_policy(await self.client.info("memory"))
        if reason and reason != self._unsafe:  # said once per change, not at every probe
            _logger.error("store.unsafe", reason=reason)
        self._unsafe = reason
        if reason:
            raise RuntimeError(reason)

    async def check_settings(self) -> None:
        """A start check: refuse an evicting policy; warn once about weak persistence."""
        if reason := unsafe_policy(await self.client.info("memory")):
            raise StartRefused(reason)
        if not self._warned:
            self._warned = True
            await self._warn_weak_persistence()

    async def _warn_weak_persistence(self) -> None:
        persistence = await self.client.info("persistence")
        if not int(persistence.get("aof_enabled", 0)):
            _logger.warning("store.weak_persistence", setting="appendonly no",
                            consequence="a Redis restart loses orders and events it had acknowledged")
        elif (fsync := await self._appendfsync()) not in ("always", None):
            _logger.warning("store.weak_persistence", setting=f"appendfsync {fsync}",
                            consequence="a Redis crash can lose up to a second of acknowledged writes")

    async def _appendfsync(self) -> str | None:
        try:
            return str((await self.client.config_get("appendfsync")).get("appendfsync"))
        except ResponseError:  # CONFIG not permitted (managed Redis, ACL): cannot tell, say nothing
            return None
