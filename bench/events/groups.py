"""Waiting for the consumer groups to catch up: read, pending and lag per group, polled until
idle, the time is up, or nothing moves for STALL_S."""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

from bench.events.notes import note
from bench.events.sizes import POLL_S, STALL_S
from shoplib import catalogue
from shoplib.store import partitions


@dataclass(frozen=True)
class GroupRow:
    stream: str
    group: str
    pending: int
    read: int  # entries-read
    behind: int  # lag: entries not yet delivered to the group (1 when unknown but behind)

    @property
    def idle(self) -> bool:
        return not self.pending and not self.behind


def group_rows(client: redis.Redis, streams: tuple[str, ...], group: str | None = None) -> list[GroupRow]:
    rows = []
    for stream in (one for base in streams for one in partitions.streams(base)):  # every partition
        try:
            info = client.xinfo_groups(stream)
            last = client.xinfo_stream(stream)["last-generated-id"]
        except redis.ResponseError:  # no such stream (yet)
            continue
        for row in info:
            name = row["name"].decode() if isinstance(row["name"], bytes) else row["name"]
            if group is None or name == group:
                lag = row.get("lag")
                behind = int(lag) if lag is not None else int(row["last-delivered-id"] != last)
                rows.append(GroupRow(stream, name, int(row["pending"]), int(row.get("entries-read") or 0), behind))
    return rows


def wait_groups(client: redis.Redis, streams: tuple[str, ...], timeout_s: float, group: str | None = None,
                expected: int = 0) -> bool:
    """Until the groups (or the one named) on `streams` have read at least `expected` entries and
    have nothing pending or lagging; False (with a note) on time limit or STALL_S without progress."""
    deadline = time.monotonic() + timeout_s
    last: list[GroupRow] = []
    last_change = time.monotonic()
    while True:
        rows = group_rows(client, streams, group)
        if rows and sum(r.read for r in rows) >= expected and all(r.idle for r in rows):
            return True
        now = time.monotonic()
        if rows != last:
            last, last_change = rows, now
        if now > deadline or now - last_change > STALL_S:
            _stuck(rows, now <= deadline)
            return False
        time.sleep(POLL_S)


def _stuck(rows: list[GroupRow], in_time: bool) -> None:
    stuck = ", ".join(f"{r.group} on {r.stream}: {r.behind} undelivered, {r.pending} pending"
                      for r in rows if not r.idle)
    why = f"no progress for {STALL_S:.0f} s" if in_time else "time limit"
    note(f"consumers did not catch up ({why}): {stuck or 'streams missing'}")


def wait_idle(client: redis.Redis, timeout_s: float) -> bool:
    return wait_groups(client, (catalogue.ORDER_EVENTS, catalogue.PAYMENT_EVENTS), timeout_s)
