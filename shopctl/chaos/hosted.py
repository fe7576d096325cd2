"""A chaos run on hosts of our own: Redis, each service and the load generator on a host each.

`HostedRun` is a Run (shopctl.chaos.harness) whose processes start through `ip netns exec` on
the hosts of a Network (shopctl.chaos.net), each bound to its host's address; the services find
Redis and one another at those addresses, so all their traffic crosses the bridge, where
`run.nemesis` (shopctl.chaos.nemesis) cuts and limits it.

The runner itself stays in the machine's namespace and adds nothing to it. It reaches the hosts
through files: Redis listens on a Unix socket besides its TCP address (the checker's reads, which
are the observer's and are never cut), and each service is reached through a relay
(shopctl.chaos.relay) running on the `client` host: the load generator's calls and the health
probes leave from there, over the bridge, like any other host's.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from shopctl.chaos.harness import FAST_ENV, Run
from shopctl.chaos.nemesis import Nemesis
from shopctl.chaos.net import Host, Network, scratch_dir
from shopctl.chaos.procs import ChaosRedis, ChaosStack, Worker, spawn
from shopctl.stack import service_of

CLIENT = "client"  # the load generator's host: the runner's calls leave from it
HOSTS = ("redis", "gateway", "order", "payment", "notification", CLIENT)
RELAY_READY_S = 10.0  # a relay is a small Python program: listening well within this
RELAY_POLL_S = 0.01


class HostedRedis(ChaosRedis):
    """The run's redis-server on its host: TCP on the host's address, a Unix socket for the runner."""

    def __init__(self, data_dir: Path, host: Host, socket: Path, aof: bool = True) -> None:
        super().__init__(data_dir, aof)
        self.host, self.socket = host, socket

    @property
    def url(self) -> str:
        return f"redis://{self.host.address}:{self.port}/0"

    def arguments(self, aof: bool = True) -> list[str]:
        args = super().arguments(aof)
        args[args.index("--bind") + 1] = self.host.address
        # Protected mode refuses other hosts without a password; ours have no route out of the suite.
        args[args.index("--protected-mode") + 1] = "no"
        return [*args, "--unixsocket", str(self.socket), "--unixsocketperm", "700"]

    def client_kwargs(self) -> dict[str, Any]:
        return {"unix_socket_path": str(self.socket)}  # the start's PING comes through the socket

    def start(self) -> HostedRedis:
        argv = self.host.command([self.binary, *self.arguments(aof=self.aof)])
        self.process = spawn(argv, None, self.data_dir / "redis.out")
        self._wait_ready()
        return self


class HostedStack(ChaosStack):
    """ChaosStack with each worker on the host named like it (else like its service)."""

    def __init__(self, log_dir: Path, redis_url: str, env: dict[str, str],
                 per_service: dict[str, dict[str, str]] | None, net: Network, sockets: Path) -> None:
        super().__init__(log_dir, redis_url, env, per_service)
        self.net, self.sockets = net, sockets
        self.relays: dict[str, str] = {}  # label -> the runner's address of it (unix:<path>)

    def host(self, label: str) -> Host:
        return self.net.hosts.get(label) or self.net[service_of(label)]

    def address(self, name: str) -> str:
        return f"{self.host(name).address}:{self.ports[name]}"

    def reach(self, name: str) -> str:
        return self.relays[name]

    def command(self, label: str, argv: list[str]) -> list[str]:
        return self.host(label).command(argv)

    def launch(self, label: str, service: str, instance: str, port: int, **env: str) -> Worker:
        host = self.host(label)
        worker = super().launch(label, service, instance, port, **{"BIND_HOST": host.address, **env})
        worker.reach = self.relay(label, f"{host.address}:{port}")
        return worker

    def relay(self, label: str, target: str) -> str:
        """A relay from a Unix socket to `target`, started on the client host (once per label)."""
        key = f"relay-{label}"
        if key in self.processes and self.processes[key].poll() is None:
            return self.relays[label]
        path = self.sockets / f"{label}.sock"
        path.unlink(missing_ok=True)
        assert self.log_dir is not None
        argv = self.net[CLIENT].command([sys.executable, "-m", "shopctl.chaos.relay", str(path), target])
        process = self.processes[key] = spawn(argv, None, self.log_dir / f"{key}.log")
        deadline = time.monotonic() + RELAY_READY_S
        while not path.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"relay for {label} did not listen (exit code {process.poll()})")
            time.sleep(RELAY_POLL_S)
        self.relays[label] = f"unix:{path}"
        return self.relays[label]


class HostedRun(Run):
    """`async with HostedRun(...) as run:` makes the hosts, starts everything on them; `run.nemesis`
    breaks their links. Everything stops, and the hosts go, on exit."""

    def __init__(self, log_dir: Path, seed: int, env: dict[str, str] | None = None,
                 per_service: dict[str, dict[str, str]] | None = None, aof: bool = True) -> None:
        super().__init__(log_dir, seed, env, per_service, aof)
        self.net = Network(HOSTS)
        self.sockets = scratch_dir()
        self.redis = HostedRedis(log_dir / "redis", self.net["redis"], self.sockets / "redis.sock", aof)
        self.stack = HostedStack(log_dir, self.redis.url, {**FAST_ENV, **(env or {})}, per_service,
                                 self.net, self.sockets)

    async def __aenter__(self) -> HostedRun:
        await asyncio.to_thread(self.net.__enter__)
        try:
            self.nemesis = await asyncio.to_thread(Nemesis, self.net, self.fault)
            self.notes.update(netem=self.nemesis.netem, nemesis=self.nemesis.history)  # kept up to date
            await super().__aenter__()
        except BaseException:
            await self._close_network()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await super().__aexit__(*exc)
        finally:
            await self._close_network()

    async def _close_network(self) -> None:
        await asyncio.to_thread(self.net.close)
        shutil.rmtree(self.sockets, ignore_errors=True)

    def store_client(self) -> aioredis.Redis:
        assert isinstance(self.redis, HostedRedis)
        return aioredis.Redis(unix_socket_path=str(self.redis.socket), socket_timeout=10)
