"""Admin commands a hardened Redis refuses (shoplib.store.settings_checks): a refusal is reported once per
setting and answered None; the command is not sent again before REFUSED_RECHECK_S; any other
error reply stays the caller's."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import structlog
from redis.exceptions import NoPermissionError, ResponseError

from shoplib.store.settings_checks import REFUSED_RECHECK_S, AdminChecks, refusal

NOPERM = NoPermissionError("this user has no permissions to run the 'info' command")
RENAMED = ResponseError("unknown command 'CONFIG', with args beginning with: 'GET' 'appendfsync'")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Redis:
    """Answers each admin command with `reply`, or raises it when it is an exception; counts calls."""

    def __init__(self, reply: object) -> None:
        self.reply, self.calls = reply, 0

    def command(self) -> Callable[[], Awaitable[object]]:
        async def call() -> object:
            self.calls += 1
            if isinstance(self.reply, Exception):
                raise self.reply
            return self.reply
        return call


@pytest.mark.parametrize("error", [NOPERM, RENAMED, ResponseError("ERR unknown subcommand 'DRYRUN'. Try ACL HELP.")])
def test_a_refused_or_absent_admin_command_is_a_refusal(error: ResponseError) -> None:
    assert refusal(error) is not None


@pytest.mark.parametrize("error", [ResponseError("LOADING Redis is loading the dataset in memory"),
                                   ResponseError("BUSY Redis is busy running a script")])
def test_other_error_replies_are_not_refusals(error: ResponseError) -> None:
    assert refusal(error) is None


async def test_a_refusal_is_logged_once_naming_the_setting_and_not_resent_at_every_probe() -> None:
    clock, redis = Clock(), Redis(NOPERM)
    checks = AdminChecks(clock)
    with structlog.testing.capture_logs() as logs:
        for _ in range(5):  # five readiness probes within the recheck period
            assert await checks.read("maxmemory-policy", "INFO memory", redis.command(), "evictions") is None
            clock.now += 1.0
        clock.now += REFUSED_RECHECK_S
        assert await checks.read("maxmemory-policy", "INFO memory", redis.command(), "evictions") is None
    assert redis.calls == 2  # the first probe, then once more after the recheck period
    assert [(e["event"], e["setting"], e["command"]) for e in logs] == [
        ("redis.setting_unchecked", "maxmemory-policy", "INFO memory")]
    assert checks.unchecked("maxmemory-policy")


async def test_a_check_allowed_again_is_said_and_its_next_refusal_reported_again() -> None:
    clock, redis = Clock(), Redis(NOPERM)
    checks = AdminChecks(clock)
    with structlog.testing.capture_logs() as logs:
        await checks.read("appendfsync", "CONFIG GET appendfsync", redis.command(), "fsync")
        redis.reply, clock.now = {"appendfsync": "always"}, clock.now + REFUSED_RECHECK_S
        assert await checks.read("appendfsync", "CONFIG GET appendfsync", redis.command(), "fsync") == {
            "appendfsync": "always"}
        redis.reply = NOPERM
        await checks.read("appendfsync", "CONFIG GET appendfsync", redis.command(), "fsync")
    assert [e["event"] for e in logs] == ["redis.setting_unchecked", "redis.setting_checked_again",
                                          "redis.setting_unchecked"]


async def test_an_error_that_is_not_a_refusal_is_raised() -> None:
    checks = AdminChecks(Clock())
    with pytest.raises(ResponseError, match="LOADING"):
        await checks.read("maxmemory-policy", "INFO memory", Redis(ResponseError("LOADING")).command(), "x")
