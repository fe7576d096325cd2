"""Least-privilege Redis: one ACL user per service, written as an ACL file for redis-server 7+.

Each service user may use the commands it needs on its own keys (`<service>:*`, with or without a
partition tag after the prefix), its own output stream (`<service>-events*`), the dead letters,
and its own health probe keys. The streams it consumes are reached only through a selector that
allows reading, acknowledging, reclaiming and trimming them, never appending to them: Redis 7
checks the keys of EVALSHA against one rule set at a time and every redis.call inside the script
again, so the commit script (which names the consumed stream among its keys) runs, while an XADD
to that stream, from the script or not, is refused NOPERM. Nobody but the admin user has
FLUSHALL, CONFIG, KEYS, DEBUG or SHUTDOWN (-@dangerous). The `default` user is off.

Beyond its work a service user gets two read-only admin commands, for its checks only: `INFO
memory` and `INFO persistence` (the sections its settings checks read, no other) and `ACL DRYRUN`
(its permission self check). A Redis that refuses them still runs the services
(shoplib.store.settings_checks); `CONFIG GET appendfsync` is not granted: reported once as unchecked.

On a Redis Cluster (REDIS_CLUSTER=1) every user whose client is a cluster client also needs
`CLUSTER SLOTS`: redis-py reads the slot map with it at connect and after each failover or
MOVED, and it is in no category granted above (only @slow). Nothing else: COMMAND, COMMAND
GETKEYS (keys of XREADGROUP and EVALSHA), READONLY and ASKING are @connection, and the cluster's
ACLs are per node, so the same lines are set on every node.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

from shoplib.security.identities import NOTIFICATION, OPS, ORDER, PAYMENT

ADMIN = "admin"  # the stack's own user: starts, inspects and stops the private Redis (tests read state with it)
SERVICE_USERS = (ORDER, PAYMENT, NOTIFICATION)
USERS = (*SERVICE_USERS, OPS, ADMIN)
# What every service may do on its own keys; what nobody below admin may do; how it checks itself.
# Categories overlap (FLUSHALL is @write, KEYS is @read): -@dangerous must come after them.
# TIME: the one clock processes compare times on (shoplib.store.shared_clock), read inside the scripts.
_BASE = "+@connection +@read +@write +@stream -@dangerous +info|memory +info|persistence +time +acl|whoami +acl|dryrun"
_SCRIPTS = "+evalsha +eval +script|load +script|exists"
# Reading, acknowledging, reclaiming, group upkeep and trimming a consumed stream; no XADD, no XDEL.
_CONSUME = ("+xreadgroup +xack +xautoclaim +xclaim +xpending +xgroup|create +xgroup|createconsumer "
            "+xgroup|delconsumer +xinfo|stream +xinfo|groups +xinfo|consumers +xrange +xrevrange +xlen +xtrim "
            "+exists +type +time")
CONSUMES: Mapping[str, tuple[str, ...]] = {  # topology: the streams each service reads from
    ORDER: ("payment-events",),
    PAYMENT: ("order-events",),
    NOTIFICATION: ("order-events", "payment-events"),
}
CHANNELS: Mapping[str, tuple[str, ...]] = {ORDER: ("order:*",)}  # pub/sub: live order updates
CLUSTER = "+cluster|slots"  # the slot map a cluster client reads (module docstring); no other CLUSTER subcommand


def own_keys(service: str) -> list[str]:
    return [f"~{service}:*", f"~{service}-events*", "~dead-letters*", f"~health:{service}-*",
            f"~health:consumer:{service}-*", f"~stream-failures:*{service}-service-group",
            f"~replicated:*:{service}"]  # REDIS_WAIT_REPLICAS's markers (shoplib.commit.replicated)


def _hash(password: str) -> str:
    return "#" + hashlib.sha256(password.encode()).hexdigest()  # the file holds no password, only its hash


def service_rules(service: str) -> str:
    keys = own_keys(service)
    inputs = [f"~{stream}*" for stream in CONSUMES[service]]
    channels = " ".join(f"&{pattern}" for pattern in CHANNELS.get(service, ())) or "resetchannels"
    pubsub = " +publish +subscribe +psubscribe +unsubscribe +punsubscribe" if service in CHANNELS else ""
    consume = f"({_CONSUME} {_SCRIPTS} {' '.join([*inputs, *keys])})"
    return f"resetkeys {channels} {_BASE}{pubsub} {_SCRIPTS} {' '.join(keys)} {consume}"


def rules(user: str, cluster: bool = False) -> str:
    """The user's ACL rules; with `cluster`, for the nodes of a Redis Cluster (+CLUSTER SLOTS)."""
    if user == ADMIN:
        return "~* &* +@all"
    if user == OPS:  # views and checkers: read everything, re-drive dead letters; no admin commands
        found = f"~* &* +@connection +@read +@stream -@dangerous +info +time {_SCRIPTS} +del"
    else:
        found = service_rules(user)
    return f"{found} {CLUSTER}" if cluster else found


def acl_file(passwords: Mapping[str, str], cluster: bool = False) -> str:
    """The ACL file's text: `default` off, then one line per user with its password's hash."""
    lines = ["user default off resetkeys resetchannels -@all"]
    lines += [f"user {user} on {_hash(passwords[user])} {rules(user, cluster)}" for user in USERS]
    return "\n".join(lines) + "\n"


def needs(service: str) -> Sequence[tuple[str, ...]]:
    """Commands a service cannot do its job without, one per kind of access, for the start-time
    self check (ACL DRYRUN): a Redis configured without one refuses the service by name. Admin
    commands of the settings checks are not among them: a service runs without them."""
    own, events = f"{service}:acl-check", f"{service}-events:{{p0}}"
    checks: list[tuple[str, ...]] = [("SET", own, "1"), ("GET", own), ("XADD", events, "*", "f", "v"),
                                     ("XADD", "dead-letters:{p0}", "*", "f", "v"),
                                     ("SCRIPT", "LOAD", "return 1"), ("TIME",), ("EVALSHA", "0" * 40, "1", own),
                                     ("HSET", f"stream-failures:{{p0}}:{service}-service-group", "f", "v")]
    for stream in CONSUMES[service]:
        consumed = f"{stream}:{{p0}}"
        checks += [("XREADGROUP", "GROUP", "g", "c", "STREAMS", consumed, ">"), ("XACK", consumed, "g", "0-1"),
                   ("XAUTOCLAIM", consumed, "g", "c", "1", "0-0"), ("EVALSHA", "0" * 40, "2", own, consumed)]
    checks += [("PUBLISH", channel.replace("*", "updates"), "x") for channel in CHANNELS.get(service, ())]
    return checks
