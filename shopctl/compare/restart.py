"""Stopping and starting one service of a running stack from a process that is busy with gRPC.

Safe because Stack.start_service runs no Python between fork and exec (with gRPC threads busy, a
preexec_fn child could crash or hang: "Other threads are currently calling into gRPC, skipping
fork() handlers"); the parent-death signal is set by a bootstrap inside the new process.
"""

from __future__ import annotations

import asyncio
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shopctl.stack import Stack

READY_TIMEOUT_S = 30.0  # a restarted service that is not SERVING by then has failed to start
# Health polling of a restarting service: retry the connection every 50 ms, not gRPC's default 1 s
# first backoff, so the moment it is SERVING is known to within a poll.
FAST_RECONNECT = [("grpc.initial_reconnect_backoff_ms", 50), ("grpc.min_reconnect_backoff_ms", 50),
                  ("grpc.max_reconnect_backoff_ms", 100)]
HEALTH_POLL_S = 0.02
async def stop(stack: Stack, name: str) -> None:
    await asyncio.to_thread(stack.stop_service, name)


def start(stack: Stack, name: str) -> None:
    """Spawn the service again without waiting (Stack spawns with no fork-time Python code)."""
    stack.start_service(name, wait=False)


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
