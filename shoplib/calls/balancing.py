"""Client-side load balancing over the N instances of a service: gRPC `round_robin`.

An address setting (ORDER_SERVICE_ADDR, a gateway target) is one `host:port`, or a comma list of
`ip:port` (`127.0.0.1:50052,127.0.0.1:50062`). A list becomes gRPC's static `ipv4:`/`ipv6:`
target; one address keeps its own resolver, so `dns:///order-headless:50052` balances over every
address the (headless Service's) DNS name returns. Each call goes to the next READY instance,
so when one instance dies the others take its calls (a call in flight on it fails UNAVAILABLE).
"""

from __future__ import annotations

import ipaddress
import json

from shoplib.config import ConfigError

# Every channel balances: with one backend round_robin behaves as pick_first, with several it spreads calls.
ROUND_ROBIN: dict[str, object] = {"loadBalancingConfig": [{"round_robin": {}}]}
ROUND_ROBIN_CONFIG = json.dumps(ROUND_ROBIN)
ROUND_ROBIN_OPTIONS = [("grpc.service_config", ROUND_ROBIN_CONFIG)]


def _host(address: str) -> str:
    host = address.rsplit(":", 1)[0]
    return host[1:-1] if host.startswith("[") else host


def _family(address: str) -> int:
    """4 or 6 for an `ip:port` / `[ip6]:port`; ConfigError for a host name (a list needs literals)."""
    try:
        return ipaddress.ip_address(_host(address)).version
    except ValueError:
        raise ConfigError(f"{address!r} in an address list is not ip:port (a list takes IP literals; "
                          "for names use one dns:/// target)") from None


def target(addresses: str) -> str:
    """The gRPC target for one address or a comma list of them (see the module docstring)."""
    parts = [part.strip() for part in addresses.split(",") if part.strip()]
    if len(parts) <= 1:
        return addresses.strip()
    families = {_family(part) for part in parts}
    if len(families) > 1:
        raise ConfigError(f"{addresses!r} mixes IPv4 and IPv6 addresses; one gRPC target takes one family")
    return f"ipv{families.pop()}:{','.join(parts)}"
