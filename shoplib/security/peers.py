"""Per-method authorization of callers by their certificate's DNS SAN (mTLS identities).

The handshake already proved the caller holds a certificate from our CA; this decides what that
identity may call. A method no rule names is refused: a new method is closed until given a rule.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import grpc

from shoplib import log
from shoplib.security.guard import Check, CheckingInterceptor, Context
from shoplib.security.identities import ALL, GATEWAY, HUMAN, OPS, ORDER, PAYMENT

_logger = log.get("shoplib.security.peers")
Policy = Mapping[str, frozenset[str]]

# Method (or service prefix) -> the identities allowed; the longest matching prefix decides.
# Writes come only from the service that drives them; reads also from people and the ops tools.
POLICY: Policy = {
    "/shop.v1.OrderService/": frozenset({GATEWAY}),
    "/shop.v1.PaymentService/Charge": frozenset({ORDER}),
    "/shop.v1.PaymentService/GetPayment": frozenset({ORDER, HUMAN, OPS}),
    "/shop.v1.NotificationService/SendNotification": frozenset({ORDER, PAYMENT}),
    "/shop.v1.NotificationService/ListNotifications": frozenset({ORDER, PAYMENT, HUMAN, OPS}),
    "/grpc.health.v1.Health/": frozenset(ALL),  # probes: any holder of a certificate from the CA
    "/grpc.reflection.": frozenset({HUMAN, OPS}),  # describing the API: people and tools
}
NOT_IDENTITIES = frozenset({"localhost", "127.0.0.1"})  # on every service certificate, so never an identity


def allowed_for(policy: Policy, method: str) -> frozenset[str]:
    """The identities allowed to call `method`; empty when no rule names it."""
    prefixes = [prefix for prefix in policy if method.startswith(prefix)]
    return policy[max(prefixes, key=len)] if prefixes else frozenset()


def identities(ctx: Context) -> frozenset[str]:
    """The caller's DNS SANs as verified by the handshake (empty without a certificate)."""
    names = ctx.peer_identities() or ()
    return frozenset(n.decode() if isinstance(n, bytes) else str(n) for n in names) - NOT_IDENTITIES


async def _authorize(method: str, allowed: frozenset[str], ctx: Context) -> None:
    caller = identities(ctx)
    if caller & allowed:
        return
    shown = ",".join(sorted(caller)) or "none"
    _logger.warning("security.caller_refused", rpc=method, caller=shown, allowed=sorted(allowed))
    await ctx.abort(grpc.StatusCode.PERMISSION_DENIED, f"caller {shown!r} may not call {method}")


class PeerAuthorization(CheckingInterceptor):
    """Refuses PERMISSION_DENIED, naming the caller, any call its identity may not make."""

    def __init__(self, policy: Policy = POLICY) -> None:
        super().__init__()
        self._policy = policy

    def check_for(self, method: str) -> Check:
        return functools.partial(_authorize, method, allowed_for(self._policy, method))
