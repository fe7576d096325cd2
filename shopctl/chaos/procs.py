"""The processes of a chaos run: started without fork-time Python code, then killed, paused and restarted.

The runner is busy with gRPC while it injects faults, and a fork that runs Python code (a
preexec_fn) while gRPC threads are live can crash or hang the child before exec (see
shopctl/compare/restart.py). So every process here is spawned plain; a two-line bootstrap sets the
parent-death signal in the child itself and then execs the real command.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from shopctl import stack as stack_module
from shopctl.local_redis.server import LocalRedis, free_port
from shopctl.stack import MODULES, Stack, wait_serving

# prctl(PR_SET_PDEATHSIG, SIGTERM), then exec argv: the setting survives exec, so nothing outlives us.
_BOOTSTRAP = ("import ctypes, os, signal, sys; ctypes.CDLL('libc.so.6').prctl(1, signal.SIGTERM); "
              "os.getppid() == int(sys.argv[1]) or sys.exit(1); os.execv(sys.argv[2], sys.argv[2:])")
# A (re)started service that is not SERVING by then has failed to start (cold start: ~1-3 s on 2 busy cores).
READY_TIMEOUT_S = 45.0
STOP_TIMEOUT_S = 5.0


def spawn(argv: list[str], env: dict[str, str] | None, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:  # the child has its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-c", _BOOTSTRAP, str(os.getpid()), *argv],
                                env=env, stdout=out, stderr=out)


class ChaosRedis(LocalRedis):
    """A private redis-server that the run may SIGKILL and start again on the same port and data.
    `aof=False` is the persistence-off control (a restart then comes back empty)."""

    def __init__(self, data_dir: Path, aof: bool = True) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        super().__init__(data_dir=str(data_dir))  # kept with the run's logs: redis.log tells what it did
        self.aof = aof

    def start(self) -> ChaosRedis:
        # LocalRedis's server (shopctl/local_redis/server.py), spawned plain; AOF can be switched off.
        self.process = spawn([self.binary, *self.arguments(aof=self.aof)], None, self.data_dir / "redis.out")
        self._wait_ready()
        return self


@dataclass
class Worker:
    """One service process: `label` names it in the run, `instance` gives its consumer names."""

    label: str
    service: str
    instance: str
    port: int
    process: subprocess.Popen[bytes]
    env: dict[str, str] = field(default_factory=dict)
    reach: str = ""  # where the runner dials it, when not on 127.0.0.1 (a worker on a host: shopctl.chaos.hosted)

    @property
    def consumer(self) -> str:
        return f"{self.service}-{self.instance}"

    @property
    def address(self) -> str:
        return self.reach or f"127.0.0.1:{self.port}"


class ChaosStack(Stack):
    """The four services as in Stack, plus extra workers, per-service environment and restarts."""

    def __init__(self, log_dir: Path, redis_url: str, env: dict[str, str],
                 per_service: dict[str, dict[str, str]] | None = None) -> None:
        super().__init__(free_ports=True, log_dir=log_dir, env={"FAULTS": "", **env})
        self.redis_url = redis_url  # ours, never one of the Stack's own
        self.per_service = per_service or {}
        self.workers: dict[str, Worker] = {}

    def service_env(self, name: str) -> dict[str, str]:
        return {**super().service_env(name), **self.per_service.get(name, {})}

    def start_service(self, name: str, wait: bool = True) -> None:
        self.launch(name, name, "1", self.ports[name])
        if wait:
            wait_serving(self.address(name))

    def launch(self, label: str, service: str, instance: str, port: int, **env: str) -> Worker:
        assert self.log_dir is not None
        full_env = {**self.service_env(service), "SERVICE_INSTANCE": instance,
                    f"{service.upper()}_PORT": str(port), **env}
        process = spawn(self.command(label, [sys.executable, "-m", MODULES[service]]), full_env,
                        self.log_dir / f"{service}-{instance}.log")
        self.workers[label] = Worker(label, service, instance, port, process, env)
        self.processes[label] = process
        return self.workers[label]

    def command(self, label: str, argv: list[str]) -> list[str]:
        """How `label`'s process is started: argv itself here (on a host: shopctl.chaos.hosted)."""
        return argv

    def add_worker(self, label: str, service: str, instance: str) -> Worker:
        return self.launch(label, service, instance, free_port())

    def stop(self) -> None:
        """Everything at once: SIGTERM to all, then SIGKILL to what is still running."""
        alive = [p for p in self.processes.values() if p.poll() is None]
        for process in alive:
            with_signal(process, signal.SIGCONT)  # a paused process cannot handle SIGTERM
            with_signal(process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process in alive:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()


def with_signal(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    if process.poll() is None:
        process.send_signal(sig)


async def until_serving(worker: Worker) -> None:
    """Wait until the worker is SERVING; fail naming its exit code if it died or took too long."""
    await stack_module.until_serving(worker.address, worker.process, f"{worker.label} ({worker.consumer})",
                                     READY_TIMEOUT_S)


async def kill(worker: Worker) -> int | None:
    """SIGKILL and reap; returns the exit status."""
    with_signal(worker.process, signal.SIGKILL)
    return await asyncio.to_thread(worker.process.wait, STOP_TIMEOUT_S)

