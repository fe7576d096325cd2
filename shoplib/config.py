"""Environment configuration that fails at start-up, naming the variable."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class ConfigError(SystemExit):
    """A setting is missing or malformed; the process exits with this message."""

    def __init__(self, message: str) -> None:
        super().__init__(f"configuration error: {message}")


def required(name: str) -> str:
    """A setting without default: its absence stops the service at start."""
    value = os.environ.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name} is required but not set")
    return value


def optional(name: str, default: T, parse: Callable[[str], T]) -> T:
    """A setting with a default; a value that does not parse stops the service at start."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return parse(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={raw!r} is not valid: {exc}") from None


def port(name: str, default: int) -> int:
    value = optional(name, default, int)
    if not 0 <= value <= 65535:
        raise ConfigError(f"{name}={value} is not a TCP port")
    return value


# The URL schemes redis-py connects with.
REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def redis_url(name: str) -> str:
    """A required Redis URL; one that redis-py cannot use stops the service at start, naming it."""
    value = required(name)
    if not value.startswith(REDIS_SCHEMES):
        raise ConfigError(f"{name}={redacted_url(value)!r} is not a Redis URL ({', '.join(REDIS_SCHEMES)})")
    return value


def redacted_url(url: str) -> str:
    """A URL safe to log: any password is replaced."""
    scheme, sep, rest = url.partition("://")
    if "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}" if ":" in creds else f"{scheme}{sep}***@{host}"


def flag(raw: str) -> bool:
    """An on/off setting: 1/true/yes/on or 0/false/no/off (any case); anything else is refused."""
    value = raw.lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected 1 or 0 (true/false, yes/no, on/off)")
