"""One clock for every comparison of times between processes: the Redis server's (`TIME`).

A process's wall clock steps (NTP, a VM resumed, an operator): a "due" time written by one process
from its own wall clock and compared by another (or by itself an hour later) strands work or
fires it early. So every score or cutoff that more than one process reads is written and compared
on the clock of the Redis server that holds it: inside a script (`NOW_MS_LUA`, Redis >= 5 replicates
a script's effects, so a script may read TIME before writing) or by `now_ms` for a view. Durations
inside one process use `time.monotonic()`.
"""

from __future__ import annotations

import redis.asyncio as aioredis

# Lua: `now_ms`, the server's clock in milliseconds (TIME is seconds and microseconds, as strings).
NOW_MS_LUA = """local server_time = redis.call('TIME')
local now_ms = tonumber(server_time[1]) * 1000 + math.floor(tonumber(server_time[2]) / 1000)
"""
# Members of a sorted set scored in server milliseconds that are due: scored at least ARGV[1] ms
# before the server's now; at most ARGV[2] of them, oldest first. KEYS[1]: the sorted set.
DUE = NOW_MS_LUA + """return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms - tonumber(ARGV[1]),
                     'LIMIT', 0, tonumber(ARGV[2]))
"""


async def now_ms(client: aioredis.Redis) -> int:
    """The Redis server's clock in milliseconds since the epoch (for views: ages of entries)."""
    seconds, micros = await client.time()
    return int(seconds) * 1000 + int(micros) // 1000
