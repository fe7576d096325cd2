"""Checks of the identifier and text fields every service takes from its callers (bounds in
shoplib.bounds), as (field path, description) violations."""

from __future__ import annotations

from shoplib.bounds import MAX_ID_LENGTH, MAX_TEXT_LENGTH


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
