"""The Redis Streams runtime: consumer groups with at-least-once delivery and exactly-once effects
(the read loop, each entry's handling, reclaim and trim, dead letters, failure records, the
consumer lease), the topology (which groups read which stream), the trace context an event
carries, and the ops view (status). May import shoplib's root, shoplib.store, shoplib.commit,
shoplib.observability, shoplib.process and shoplib.rules."""
