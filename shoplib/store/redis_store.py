"""A service's Redis: the client, its outage gate, and the settings our guarantees rest on.

Exactly-once effects and "nothing acknowledged is lost" hold only while Redis never deletes our
keys on its own and keeps what it acknowledged. An evicting `maxmemory-policy` deletes once keys,
streams and groups under memory pressure (double charges, lost events, silently): a service
refuses to start on it, and turns NOT_SERVING if it appears later. No AOF (a restart loses
acknowledged writes) and a lax fsync weaken them: warned about once, loudly.

Those settings are read with admin commands (INFO, CONFIG GET) that a hardened Redis may refuse
(`+@all -@dangerous`, managed Redis): then the setting is reported once as unchecked
(shoplib.store.settings_checks) and neither start nor readiness waits for it; readiness rests on the write
probe, a command the work itself needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import redis.asyncio as aioredis

from shoplib import log
from shoplib.process.health import Dependency
from shoplib.process.service import StartRefused
from shoplib.store import connections, lean
from shoplib.store.outage import StoreGate, write_probe
from shoplib.store.settings_checks import AdminChecks

# The one maxmemory-policy under which Redis never deletes a key by itself.
SAFE_POLICY = "noeviction"
_logger = log.get("shoplib.store.redis_store")


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
    _admin: AdminChecks = field(default_factory=AdminChecks, repr=False)

    @classmethod
    def connect(cls, url: str, owner: str) -> Store:
        """`owner` names the probe key (health:<owner>), one per service instance."""
        client = connections.connect(url)
        return cls(client, StoreGate(write_probe(client, f"health:{owner}")))

    def dependencies(self) -> list[Dependency]:
        """Readiness: Redis takes writes now (a write probe, not PING), and is still set up safely
        as far as this user may see (a refused INFO leaves the last verdict standing)."""
        return [Dependency("redis", self.gate.check), Dependency("redis-settings", self.settings_hold)]

    async def settings_hold(self) -> None:
        """Raises RuntimeError (the reason) while maxmemory-policy is seen to be evicting."""
        memory = await self._memory_info()
        reason = self._unsafe if memory is None else unsafe_policy(memory)
        if reason and reason != self._unsafe:  # said once per change, not at every probe
            _logger.error("store.unsafe", reason=reason)
        self._unsafe = reason
        if reason:
            raise RuntimeError(reason)

    async def check_settings(self) -> None:
        """A start check: refuse an evicting policy; warn once about weak persistence. Settings
        this user may not read are reported once as unchecked, and do not hold the start."""
        memory = await self._memory_info()
        if memory is not None and (reason := unsafe_policy(memory)):
            raise StartRefused(reason)
        if not self._warned:
            self._warned = True
            await self._warn_weak_persistence()

    async def aclose(self) -> None:
        """On stop: every lean connection made from this client, then the client's own pool."""
        await lean.close_all(self.client)
        await self.client.aclose()

    async def _memory_info(self) -> dict[str, object] | None:
        return await self._admin.read("maxmemory-policy", "INFO memory", lambda: self.client.info("memory"),
                                      "an evicting policy would delete keys, streams and groups unseen")

    async def _warn_weak_persistence(self) -> None:
        persistence = await self._admin.read("appendonly", "INFO persistence", lambda: self.client.info("persistence"),
                                             "without AOF a Redis restart loses acknowledged writes")
        if persistence is None:
            return
        if not int(persistence.get("aof_enabled", 0)):
            _logger.warning("store.weak_persistence", setting="appendonly no",
                            consequence="a Redis restart loses orders and events it had acknowledged")
        elif (fsync := await self._appendfsync()) not in ("always", None):
            _logger.warning("store.weak_persistence", setting=f"appendfsync {fsync}",
                            consequence="a Redis crash can lose up to a second of acknowledged writes")

    async def _appendfsync(self) -> str | None:
        reply = await self._admin.read("appendfsync", "CONFIG GET appendfsync",
                                       lambda: self.client.config_get("appendfsync"),
                                       "a lax fsync can lose up to a second of acknowledged writes")
        return None if reply is None else str(reply.get("appendfsync"))
