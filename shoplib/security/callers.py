"""The gateway's callers: every public call carries a bearer token; what its subject may see.

The token interceptor verifies the `authorization` metadata of GatewayService calls and puts the
Principal in a contextvar for the servicer; health and reflection stay open (probes, and the
public contract, which the protos publish anyway). Without the secure profile there is no
principal and every check below allows (the plaintext profile trusts loopback).
"""

from __future__ import annotations

import functools
from contextvars import ContextVar
from typing import TYPE_CHECKING

import grpc

from shoplib import errors, log
from shoplib.security.guard import Check, CheckingInterceptor, Context
from shoplib.security.principal import Principal, Unauthenticated

if TYPE_CHECKING:  # the JWT library is loaded only where tokens are checked (shoplib.security.serving)
    from shoplib.security.auth import TokenVerifier

PROTECTED = "/shop.v1.GatewayService/"
AUTHORIZATION = "authorization"
principal: ContextVar[Principal | None] = ContextVar("principal", default=None)
_logger = log.get("shoplib.security.callers")


class PermissionDenied(errors.ServiceError):
    code = "PERMISSION_DENIED"


async def _authenticate(verifier: TokenVerifier, method: str, ctx: Context) -> None:
    offered = dict(ctx.invocation_metadata() or ()).get(AUTHORIZATION)
    try:
        found = verifier.verify(offered if isinstance(offered, str) else None)
    except Unauthenticated as exc:  # the reason only: never the token
        _logger.warning("security.token_refused", rpc=method, reason=exc.message)
        await ctx.abort(grpc.StatusCode.UNAUTHENTICATED, exc.message)
    principal.set(found)
    log.bind(subject=found.subject)


class TokenAuthentication(CheckingInterceptor):
    """UNAUTHENTICATED with the reason for a public call without a valid bearer token."""

    def __init__(self, verifier: TokenVerifier) -> None:
        super().__init__()
        self._verifier = verifier

    def check_for(self, method: str) -> Check | None:
        return functools.partial(_authenticate, self._verifier, method) if method.startswith(PROTECTED) else None


def require_acting_for(customer_id: str) -> None:
    """PERMISSION_DENIED unless the caller is this customer (or an operator)."""
    found = principal.get()
    if found is not None and not found.may_act_for(customer_id):
        raise PermissionDenied("the token's subject may not place orders for another customer")


def may_see(customer_id: str) -> bool:
    """Whether the caller may see an order of this customer; callers that may not are told
    NOT_FOUND, exactly as for an order that does not exist (existence is not leaked)."""
    found = principal.get()
    return found is None or found.may_act_for(customer_id)
