"""Rules every service applies to what it is handed: money, identifier and text fields, the bounds
on every value from a client or the broker, random ids, message timestamps. May import config and
shoplib.store.partitions (an order id names its partition); loads no Redis client and no gRPC."""
