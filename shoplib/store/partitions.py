"""The key layout: P hash-tagged partitions, so every atomic step stays in one Redis Cluster slot.

Everything of one order lives under one hash tag `{pN}` or `{pN.k}` (N in 0..P-1; see `tag`),
right after the owner's prefix, so the same names work on one Redis and on a cluster:
    order:{p3}:ord_p3_<hex>   order:{p3}:key:<idempotency key>   order:{p3}:pending-events
    payment:{p3}:ord_p3_<hex> payment:{p3}:ledger                notification:{p3}:ord_p3_<hex>
    order-events:{p3}         payment-events:{p3}                dead-letters:{p3}
The partition follows from the idempotency key (crc32 mod P: a retry lands in the same slot) and
is carried in the order id (`ord_p3_<hex>`), so a look-up by order id needs no search. P is fixed
for a deployment (PARTITIONS): changing it moves every order to another partition.
"""

from __future__ import annotations

import functools
import re
import zlib
from binascii import crc_hqx

from shoplib import config

# 16 partitions spread as evenly as 16 can over the three masters of a default 3-master cluster
# (5, 5 and 6 of them with redis-cli's even slot ranges: see `tag`) while per-partition chores
# (reclaim, trim) stay cheap.
DEFAULT_PARTITIONS = 16
# Redis Cluster's hash slots: a tag's slot is CRC16(tag) mod this.
SLOTS = 16384
# Tags tried per partition before giving up: a band is at least 16 slots wide (P <= 1024), so a
# try lands in it with odds >= 1/1024 and 100,000 tries all miss with odds below e^-97.
MAX_SALT = 100_000
# Past this the per-partition chores of every consumer (reclaim, trim, group checks) dominate.
MAX_PARTITIONS = 1024
# Order ids and stream names whose partition or base name is remembered: an event's path asks
# for its order's partition several times (its stream, its keys, its checks), and a consumer
# reads few streams; LRU, so hostile or one-off names cannot grow it.
NAMES_KEPT = 4096
_IN_ORDER_ID = re.compile(r"ord_p(\d+)_")
_TAG = re.compile(r"\{p(\d+)(?:\.\d+)?\}")


@functools.cache
def count() -> int:
    """P, from PARTITIONS (default DEFAULT_PARTITIONS); ConfigError names it when out of range."""
    value = config.optional("PARTITIONS", DEFAULT_PARTITIONS, int)
    if not 1 <= value <= MAX_PARTITIONS:
        raise config.ConfigError(f"PARTITIONS={value} must be between 1 and {MAX_PARTITIONS}")
    return value


def every() -> range:
    return range(count())


def tag(partition: int) -> str:
    """The hash tag of a partition: `{pN}`, or `{pN.k}` with the smallest k whose slot falls in band
    N of P equal bands of the 16384 slots. Plain `{p0}`..`{p15}` hash to clustered slots (4, 5 and
    7 of 16 on three evenly sliced masters); with one tag per band, a master of M evenly sliced
    ones holds the bands inside its slot range, plus perhaps the one straddling each end (16 on
    three masters: 5, 5 and 6)."""
    return _banded_tag(partition, count())


@functools.cache
def _banded_tag(partition: int, partitions: int) -> str:
    low, high = partition * SLOTS // partitions, (partition + 1) * SLOTS // partitions
    for salt in range(MAX_SALT):
        name = f"p{partition}" if salt == 0 else f"p{partition}.{salt}"
        if low <= slot(name) < high:
            return f"{{{name}}}"
    raise AssertionError(f"no tag of partition {partition} of {partitions} within {MAX_SALT} tries")


def slot(tag_name: str) -> int:
    """Redis Cluster's hash slot of a tag without braces: CRC16 (XMODEM, as binascii.crc_hqx
    computes it) mod SLOTS, the cluster spec's rule. Not redis-py's `key_slot`: the domain imports
    this module, and importing a handlers module loads no Redis client (tests/unit/test_imports.py)."""
    return crc_hqx(tag_name.encode(), 0) % SLOTS


def key(prefix: str, partition: int, *rest: str) -> str:
    """`prefix:{pN}:rest...`: a key owned by `prefix` (order, payment, ...) in one partition."""
    return ":".join((prefix, tag(partition), *rest))


def stream(name: str, partition: int) -> str:
    """A stream (or dead-letter stream) of one partition: `name:{pN}`."""
    return _stream(name, partition, count())


@functools.lru_cache(maxsize=NAMES_KEPT)
def _stream(name: str, partition: int, partitions: int) -> str:
    return f"{name}:{_banded_tag(partition, partitions)}"


def streams(name: str) -> list[str]:
    """The stream `name` of every partition, in partition order."""
    return [stream(name, p) for p in every()]


@functools.lru_cache(maxsize=NAMES_KEPT)
def base(name: str) -> str:
    """The stream a partition's stream belongs to: `order-events:{p3}` -> `order-events`."""
    return _TAG.sub("", name).removesuffix(":")


def partition_of(idempotency_key: str) -> int:
    """The partition of a new order: stable over processes, restarts and retries."""
    return zlib.crc32(idempotency_key.encode()) % count()


def order_id(partition: int, suffix: str) -> str:
    return f"ord_p{partition}_{suffix}"


def partition_of_order(order_id: str) -> int:
    """The partition an order id names (`ord_p3_...` -> 3); ValueError when out of range. An id
    without one (made before partitions existed) is placed by a stable hash of the whole id."""
    return _partition_of_order(order_id, count())


@functools.lru_cache(maxsize=NAMES_KEPT)  # a ValueError is not kept: raised again each time
def _partition_of_order(order_id: str, partitions: int) -> int:
    found = _IN_ORDER_ID.match(order_id)
    if found is None:
        return zlib.crc32(order_id.encode()) % partitions
    partition = int(found.group(1))
    if partition >= partitions:
        raise ValueError(f"names partition {partition}, but there are {partitions} (0..{partitions - 1})")
    return partition


def partition_of_key(name: str) -> int:
    """The partition of a key or stream of this layout (`payment-events:{p3}` -> 3); ValueError
    when it carries no partition tag."""
    found = _TAG.search(name)
    if found is None:
        raise ValueError(f"{name!r} carries no partition tag")
    return int(found.group(1))
