"""Bare server processes: one per role on a free port, each `python -m <bench> --bare-server <role>
<port> <args>`, ready before the bench measures and stopped whatever happens; with `redis`, on a
private redis-server of their own (shopctl.local_redis.server: AOF, fsync always, as the real stack's)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import Self

import grpc

from shopctl.local_redis.server import LocalRedis, free_port, python_module_command

READY_TIMEOUT_S = 20.0  # a bare server process imports grpc and binds within a few seconds
STOP_TIMEOUT_S = 5.0
CLIENT = "bench client"  # the load generator: its CPU is not the stack's
ROOT = Path(__file__).resolve().parents[2]  # the repository: where `python -m bench.<name>` resolves


class BareServers(ABC):
    """`with Subclass() as servers:` starts the processes (`start`, by role), waits until each
    serves, and stops them all on the way out."""

    def __init__(self, module: str, roles: Iterable[str], redis: bool = False) -> None:
        self.module = module
        self.ports = {role: free_port() for role in roles}
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._with_redis = redis
        self.redis: LocalRedis | None = None
        self.env: dict[str, str] = {}  # on top of this process's environment, for every process spawned

    @property
    def redis_url(self) -> str:
        assert self.redis is not None, "started with redis=True"
        return self.redis.url

    def pids(self, client: bool = False) -> dict[str, int]:
        """Every process of the twin (its Redis too; with `client`, the bench's own): CPU is read
        from these."""
        pids = {role: process.pid for role, process in self.processes.items()}
        if self.redis is not None and self.redis.process is not None:
            pids["redis"] = self.redis.process.pid
        return pids | ({CLIENT: os.getpid()} if client else {})

    def address(self, role: str) -> str:
        return f"127.0.0.1:{self.ports[role]}"

    @abstractmethod
    def start(self) -> None:
        """Spawns every role: each bench says in which order and with what arguments."""

    def spawn(self, role: str, *args: str, serves: str | None = None) -> None:
        """The process of `role` on its port; `serves`: the handlers it runs, when not the role's."""
        command = python_module_command(self.module, "--bare-server", serves or role, str(self.ports[role]), *args)
        self.processes[role] = subprocess.Popen(command, cwd=ROOT, env={**os.environ, **self.env})

    def __enter__(self) -> Self:
        try:
            if self._with_redis:
                self.redis = LocalRedis().start()
            self.start()
            asyncio.run(self._wait_ready())
        except BaseException:
            self.__exit__()
            raise
        return self

    async def _wait_ready(self) -> None:
        for role in self.ports:
            async with grpc.aio.insecure_channel(self.address(role)) as channel:
                await asyncio.wait_for(channel.channel_ready(), READY_TIMEOUT_S)

    def __exit__(self, *exc: object) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.redis is not None:
            self.redis.close()
            self.redis = None
