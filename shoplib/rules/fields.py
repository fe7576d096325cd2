"""Checks of the identifier and text fields every service takes from its callers (bounds in
shoplib.rules.bounds), as (field path, description) violations."""

from __future__ import annotations

import re

from shoplib.rules.bounds import MAX_ID_LENGTH, MAX_TEXT_LENGTH
from shoplib.store import partitions

# Order ids are ours ("ord_" and hex); a look-up or an event may only name something of that
# shape, so a client-chosen id can never address another kind of key (order:key:..., payment:ledger).
ORDER_ID = re.compile(r"ord[_-][A-Za-z0-9_-]+")


def id_violations(field: str, value: str) -> list[tuple[str, str]]:
    """An identifier: not blank, at most MAX_ID_LENGTH printable characters."""
    if not value.strip():
        return [(field, "must not be empty")]
    if len(value) > MAX_ID_LENGTH or not value.isprintable():
        return [(field, f"must be at most {MAX_ID_LENGTH} printable characters")]
    return []


def text_violations(field: str, value: str) -> list[tuple[str, str]]:
    """Free text: at most MAX_TEXT_LENGTH characters."""
    return [(field, f"must be at most {MAX_TEXT_LENGTH} characters")] if len(value) > MAX_TEXT_LENGTH else []


def order_id_violations(field: str, value: str) -> list[tuple[str, str]]:
    """An order id: an identifier of our order-id shape (ord_ followed by letters, digits, - or _),
    naming a partition this deployment has (ord_p3_... needs PARTITIONS > 3)."""
    if found := id_violations(field, value):
        return found
    if not ORDER_ID.fullmatch(value):
        return [(field, "is not an order id (ord_...)")]
    try:
        partitions.partition_of_order(value)
    except ValueError as exc:
        return [(field, f"is not an order id of this deployment: it {exc}")]
    return []
