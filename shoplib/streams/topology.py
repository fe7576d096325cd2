"""Which consumer groups read which stream: declared once, read by every service, the trimming,
the operations view and the tests.

An entry may be trimmed only once every group declared here has processed it, so every service
makes sure all declared groups of a stream exist before it trims that stream (a group that went
missing is recreated from the start of what is kept, never silently skipped).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from shoplib import catalogue, log
from shoplib.store import outage, partitions

ORDER_GROUP = "order-service-group"
PAYMENT_GROUP = "payment-service-group"
NOTIFICATION_GROUP = "notification-service-group"

# stream -> the groups that must process every entry of it, in every partition (order-events
# stands for order-events:{p0} .. order-events:{pP-1}: shoplib.store.partitions).
GROUPS: Mapping[str, tuple[str, ...]] = {
    catalogue.ORDER_EVENTS: (PAYMENT_GROUP, NOTIFICATION_GROUP),
    catalogue.PAYMENT_EVENTS: (ORDER_GROUP, NOTIFICATION_GROUP),
    catalogue.NOTIFICATION_EVENTS: (),  # an audit trail nobody consumes: trimmed by age alone
}
# Streams no group reads, and the group whose service trims them (their producer).
TRIMMED_BY: Mapping[str, tuple[str, ...]] = {NOTIFICATION_GROUP: (catalogue.NOTIFICATION_EVENTS,)}
STREAMS = tuple(GROUPS)
_logger = log.get("shoplib.streams.topology")


def check_subscription(group: str, streams: Sequence[str]) -> None:
    """A subscription must be one the topology declares (fails at start, naming what is wrong)."""
    undeclared = [s for s in streams if group not in GROUPS.get(s, ())]
    if undeclared or not streams:
        raise ValueError(f"group {group!r} is not declared in shoplib.streams.topology "
                         f"for streams {undeclared or streams}")


def trimmed_by(group: str, consumed: Sequence[str]) -> tuple[str, ...]:
    """The streams a service consuming with `group` keeps bounded."""
    return (*consumed, *TRIMMED_BY.get(group, ()))


def groups_of(stream: str) -> tuple[str, ...]:
    """The declared groups of a stream of one partition (`order-events:{p3}`) or of its base name."""
    return GROUPS.get(partitions.base(stream), ())


def in_partitions(wanted: Mapping[str, Sequence[str]]) -> dict[str, Sequence[str]]:
    """`wanted` (by base stream name) for the streams of every partition."""
    return {stream: groups for base, groups in wanted.items() for stream in partitions.streams(base)}


def is_group_missing(exc: ResponseError) -> bool:
    """NOGROUP, bare or wrapped by a script error (Redis 6.2: see outage.reply_code)."""
    return outage.reply_code(exc) == "NOGROUP"


async def ensure_groups(client: aioredis.Redis, wanted: Mapping[str, Sequence[str]]) -> list[tuple[str, str]]:
    """Create every (stream, group) of `wanted` (streams of one partition each: see
    `in_partitions`) that is missing, from the start of the stream (MKSTREAM; "already exists"
    is fine). Returns what had to be created."""
    created = []
    for stream, groups in wanted.items():
        for group in groups:
            try:
                await client.xgroup_create(stream, group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
                continue
            created.append((stream, group))
            _logger.info("consumer.group_created", stream=stream, group=group)
    return created
