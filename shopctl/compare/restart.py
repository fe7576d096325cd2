"""Stopping and starting one service of a running stack from a process that is busy with gRPC.

Stack.start_service forks with a Python preexec_fn (to set the parent-death signal). Once this
process has gRPC threads running, such a child can crash (SIGSEGV) or hang before exec: gRPC says
"Other threads are currently calling into gRPC, skipping fork() handlers". So a restart here
spawns without preexec_fn; a two-line bootstrap sets the parent-death signal in the new process
itself, then execs the service, so the same command, environment and log file are used.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shopctl.stack import MODULES, Stack

READY_TIMEOUT_S = 30.0  # a restarted service that is not SERVING by then has failed to start
# Health polling of a restarting service: retry the connection every 50 ms, not gRPC's default 1 s
# first backoff, so the moment it is SERVING is known to within a poll.
FAST_RECONNECT = [("grpc.initial_reconnect_backoff_ms", 50), ("grpc.min_reconnect_backoff_ms", 50),
                  ("grpc.max_reconnect_backoff_ms", 100)]
HEALTH_POLL_S = 0.02
# prctl(PR_SET_PDEATHSIG, SIGTERM) in the new process, then exec the service module: the setting
# survives exec, and the service dies with this process however this process dies.
_BOOTSTRAP = ("import ctypes, os, signal, sys; ctypes.CDLL('libc.so.6').prctl(1, signal.SIGTERM); "
              "os.getppid() == int(sys.argv[2]) or sys.exit(1); "
              "os.execv(sys.executable, [sys.executable, '-m', sys.argv[1]])")


async def stop(stack: Stack, name: str) -> None:
    await asyncio.to_thread(stack.stop_service, name)


def start(stack: Stack, name: str) -> None:
    """Spawn the service again (no fork-time Python code); call from the thread that owns the stack."""
    assert stack.log_dir is not None, "the comparison always runs its stack with a log folder"
    with open(stack.log_dir / f"{name}.log", "ab") as out:  # the child has its own copy of the descriptor
        stack.processes[name] = subprocess.Popen(
            [sys.executable, "-c", _BOOTSTRAP, MODULES[name], str(os.getpid())],
            env=stack.service_env(name), stdout=out, stderr=out)


async def until_serving(stack: Stack, name: str) -> None:
    """Poll the service's health until SERVING; fail, naming its log, if it died or took too long."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    async with grpc.aio.insecure_channel(stack.address(name), options=FAST_RECONNECT) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline and stack.processes[name].poll() is None:
            try:
                reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=0.5)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            await asyncio.sleep(HEALTH_POLL_S)
    code = stack.processes[name].poll()
    raise RuntimeError(f"{name} did not become SERVING (exit code {code}); see {stack.log_dir}/{name}.log")


async def restart(stack: Stack, name: str, env: dict[str, str | None]) -> None:
    """Restart with `env` applied to the stack's environment (None unsets); later starts keep it."""
    await stop(stack, name)
    for key, value in env.items():
        if value is None:
            stack.env.pop(key, None)
        else:
            stack.env[key] = value
    start(stack, name)
    await until_serving(stack, name)
