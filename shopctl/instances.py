"""N instances of every service (`INSTANCES=N make up`): distinct consumer names, own ports, and
every caller balancing over the N addresses of what it calls (gRPC round_robin, shoplib.calls.balancing).

Instance 1 of a service is the Stack's own (`order`); instance i >= 2 is `order-i`, with
SERVICE_INSTANCE=i (consumer name `order-i`) and, on fixed ports, the service's port + (i-1) * 10.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from shopctl.local_redis.server import free_port
from shopctl.stack import SERVICES, Stack, exit_status, service_of
from shoplib import config

# Instance i listens on the fixed port + (i - 1) * PORT_STEP (order: 50052, 50062...): the
# services' fixed ports are 1 apart, so a step of 10 keeps up to 10 instances clear of each other.
PORT_STEP = 10
MAX_INSTANCES = 10
CALLED = ("order", "payment", "notification")  # the services others call, by *_SERVICE_ADDR


def instances_from_env() -> int:
    """INSTANCES (default 1, at most MAX_INSTANCES); ConfigError naming it otherwise."""
    count = config.optional("INSTANCES", 1, int)
    if not 1 <= count <= MAX_INSTANCES:
        raise config.ConfigError(f"INSTANCES={count} is not between 1 and {MAX_INSTANCES}")
    return count


@dataclass
class ScaledStack(Stack):
    """A Stack with `instances` processes of every service; use as `with ScaledStack(...)`."""

    instances: int = 1
    _reported: set[str] = field(default_factory=set)  # exited instances already reported

    def __post_init__(self) -> None:
        super().__post_init__()
        for service in SERVICES:
            for index in range(2, self.instances + 1):
                label, step = f"{service}-{index}", PORT_STEP * (index - 1)
                self.ports[label] = free_port() if self.free_ports else self.ports[service] + step
                metrics = self.metrics_ports[service]
                self.metrics_ports[label] = 0 if not metrics else free_port() if self.free_ports else metrics + step

    def labels(self, service: str | None = None) -> list[str]:
        """The process names of a service's instances (of every service, in start order)."""
        services = [service] if service else list(SERVICES)
        return [label for name in services for label in [name, *(f"{name}-{i}" for i in range(2, self.instances + 1))]]

    def addresses(self, service: str) -> str:
        """Every instance's address, comma-separated: what a caller's *_SERVICE_ADDR holds."""
        return ",".join(self.address(label) for label in self.labels(service))

    def service_env(self, name: str) -> dict[str, str]:
        service = service_of(name)
        env = super().service_env(service)
        env.update({f"{called.upper()}_SERVICE_ADDR": self.addresses(called) for called in CALLED})
        env.update({f"{service.upper()}_PORT": str(self.ports[name]),
                    f"{service.upper()}_METRICS_PORT": str(self.metrics_ports[name])})
        if name != service:
            env["SERVICE_INSTANCE"] = name.rsplit("-", 1)[1]
        return env

    def extra(self) -> list[str]:
        return [label for label in self.labels() if label not in SERVICES]

    def start(self) -> None:
        super().start()
        for label in self.extra():
            self.start_service(label, wait=False)
        self.wait_serving(self.extra())

    def check_running(self, when: str, names: Sequence[str] = ()) -> None:
        """With `names`, as Stack does. Without (`make up`): a service is down, and the stack stops,
        only when every instance of it has exited; one exited instance is reported, once."""
        if names:
            return super().check_running(when, names)
        exited = {label for label, process in self.processes.items() if process.poll() is not None}
        for label in sorted(exited - self._reported):
            alive = [other for other in self.labels(service_of(label)) if other not in exited]
            code = self.processes[label].poll()
            print(f"{label} exited ({exit_status(code or 0)}); {len(alive)} of {self.instances} instances of "
                  f"{service_of(label)} carry on: {', '.join(alive) or 'none'}", flush=True)
        self._reported |= exited
        down = [service for service in SERVICES if set(self.labels(service)) <= exited]
        return super().check_running(when, [label for service in down for label in self.labels(service)])

    def stop(self) -> None:
        for label in reversed(self.extra()):
            self.stop_service(label)
        super().stop()
