"""Stopping and starting one service of a running stack from a process that is busy with gRPC.

Safe because Stack.start_service runs no Python between fork and exec (with gRPC threads busy, a
preexec_fn child could crash or hang: "Other threads are currently calling into gRPC, skipping
fork() handlers"); the parent-death signal is set by a bootstrap inside the new process.
"""

from __future__ import annotations

import asyncio

from shopctl import stack as stack_module
from shopctl.stack import Stack

READY_TIMEOUT_S = 30.0  # a restarted service that is not SERVING by then has failed to start
async def stop(stack: Stack, name: str) -> None:
    await asyncio.to_thread(stack.stop_service, name)


def start(stack: Stack, name: str) -> None:
    """Spawn the service again without waiting (Stack spawns with no fork-time Python code)."""
    stack.start_service(name, wait=False)


async def until_serving(stack: Stack, name: str) -> None:
    """Wait until the service is SERVING; fail, naming its log, if it died or took too long."""
    await stack_module.until_serving(stack.address(name), stack.processes[name],
                                     f"{name} (log {stack.log_dir}/{name}.log)", READY_TIMEOUT_S)


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
