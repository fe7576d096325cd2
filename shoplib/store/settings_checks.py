"""Checks that need admin commands, on a Redis that may refuse them.

A service's work needs only data commands (strings, hashes, streams, scripts, pub/sub). Its
settings checks (`INFO memory` for maxmemory-policy, `INFO persistence` for appendonly, `CONFIG
GET appendfsync`) and its permission self check (`ACL DRYRUN`) need admin commands, which a
hardened or managed Redis refuses (`+@all -@dangerous`: NOPERM) or renames away (unknown
command). None of those is work: a refused one is reported once, naming the setting that could
not be checked and what rests on it, and the caller goes on as if it had passed; start and
readiness then rest on the commands the work uses (the write probe).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import NoPermissionError, ResponseError

from shoplib import log

T = TypeVar("T")
# A refused check is asked again this often (an operator may grant it later), not at every
# readiness probe (1 s): each refusal is an entry in Redis's ACL LOG, which operators watch.
REFUSED_RECHECK_S = 60.0
# How Redis says a command does not exist here (renamed or disabled by the provider).
_ABSENT = ("unknown command", "unknown subcommand")
_logger = log.get("shoplib.store.settings_checks")


def refusal(error: ResponseError) -> str | None:
    """Why Redis will not run this admin command for us (NOPERM, or the command is absent), or
    None when `error` is any other error reply (those are the caller's to handle)."""
    text = str(error)
    if isinstance(error, NoPermissionError) or text.startswith("NOPERM"):
        return "NOPERM: not permitted for this Redis user"
    if any(marker in text.lower() for marker in _ABSENT):
        return "the command is not available on this Redis (renamed or disabled)"
    return None


class AdminChecks:
    """Runs each check's admin command while Redis allows it. `read` returns the reply, or None
    while the command is refused: the refusal is logged once per setting (again only after the
    check ran once more in between), and the command is not sent again for REFUSED_RECHECK_S."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._refused_at: dict[str, float] = {}  # setting -> monotonic time (s) of its last refusal

    def unchecked(self, setting: str) -> bool:
        return setting in self._refused_at

    async def read(self, setting: str, command: str, call: Callable[[], Awaitable[T]], at_stake: str) -> T | None:
        """`setting`, `command`: named in the log line; `at_stake`: what goes unverified."""
        refused_at = self._refused_at.get(setting)
        if refused_at is not None and self._clock() - refused_at < REFUSED_RECHECK_S:
            return None
        try:
            reply = await call()
        except ResponseError as exc:
            if (why := refusal(exc)) is None:
                raise
            if refused_at is None:
                _logger.warning("redis.setting_unchecked", setting=setting, command=command, reason=why,
                                at_stake=at_stake)
            self._refused_at[setting] = self._clock()
            return None
        if self._refused_at.pop(setting, None) is not None:
            _logger.info("redis.setting_checked_again", setting=setting, command=command)
        return reply
