"""The store: a service's Redis and its connections (pooled, lean pipelined, cluster), the key
layout (partitions), its reads, the outage rules, the settings checks and the shared clock.
May import shoplib's root, shoplib.rules, shoplib.security (who a process is to Redis) and
shoplib.process (a store is a health dependency; a start refusal)."""
