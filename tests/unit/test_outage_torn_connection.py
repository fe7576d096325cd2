"""A connection closed under a command by the cluster client during a failover is an outage: redis-py
then fails inside its connection code with RuntimeError / AttributeError; the same errors from
anywhere else stay bugs."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from redis.exceptions import RedisClusterException

from shoplib.store import outage


def _raiser(filename: str, body: str) -> Callable[[], None]:
    """A function compiled as if it lived in `filename`, so its frames name that file."""
    scope: dict[str, object] = {}
    exec(compile(f"def send():\n    {body}\n", filename, "exec"), scope)  # a fixed test snippet
    return scope["send"]  # type: ignore[return-value]


def _caught(send: Callable[[], None]) -> BaseException:
    with pytest.raises(Exception) as caught:
        send()
    return caught.value


@pytest.mark.parametrize("body", ["None.writelines([])", "raise RuntimeError('the handler is closed')"])
def test_torn_connection_inside_redis_py_is_an_outage(body: str) -> None:
    exc = _caught(_raiser("/venv/site-packages/redis/asyncio/connection.py", body))
    assert outage.is_outage(exc) and outage.describe(exc) == "ConnectionClosed"


@pytest.mark.parametrize("body", ["None.writelines([])", "raise RuntimeError('the handler is closed')"])
def test_the_same_errors_from_our_code_are_not_outages(body: str) -> None:
    assert not outage.is_outage(_caught(_raiser("/work/shoplib/handlers.py", body)))


def test_a_cluster_without_a_full_slot_map_is_an_outage_other_cluster_errors_are_not() -> None:
    assert outage.is_outage(RedisClusterException("Redis Cluster cannot be connected. Please provide ..."))
    assert outage.is_outage(RedisClusterException("All slots are not covered after query all startup_nodes."))
    assert not outage.is_outage(RedisClusterException("No targets were found to execute ('X',) command on"))
