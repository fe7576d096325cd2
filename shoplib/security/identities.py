"""Who is who in the secure profile: the identity of a caller is its certificate's DNS SAN.

Each service has its own identity (its name); people with grpcurl use `client`; the ops tools
(stack health probes, `make streams`, the chaos checker) use `ops`. Servers authorize per method
by these names (shoplib.security.peers); `localhost` is on every service certificate and is
never an identity.
"""

from __future__ import annotations

GATEWAY, ORDER, PAYMENT, NOTIFICATION = "gateway", "order", "payment", "notification"
SERVICES = (GATEWAY, ORDER, PAYMENT, NOTIFICATION)
HUMAN = "client"  # the client certificate handed to people with grpcurl
OPS = "ops"  # the operations tools: health probes, stream views, checkers
ALL = (*SERVICES, HUMAN, OPS)
REDIS = "redis"  # the private Redis's server certificate under REDIS_TLS=1 (a server, never a caller)
CERTIFICATES = (*ALL, REDIS)
