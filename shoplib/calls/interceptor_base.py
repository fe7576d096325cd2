"""The shape every server interceptor of ours shares: hand gRPC a rebuilt twin of each method's
handler, built on the method's first call and kept, so a call costs one look-up beyond the
handler itself. Only handlers the server has enter, so the table stays bounded."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

Handler = grpc.RpcMethodHandler  # subscripted only in annotations: the class is not generic at run time


class RebuildingInterceptor(grpc.aio.ServerInterceptor):
    """Subclasses say in `rebuild` what a method's handler becomes."""

    def __init__(self) -> None:
        self._rebuilt: dict[str, tuple[Handler[Any, Any], Handler[Any, Any]]] = {}

    def rebuild(self, method: str, handler: Handler[Any, Any]) -> Handler[Any, Any]:
        raise NotImplementedError

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler[Any, Any] | None]],
        details: grpc.HandlerCallDetails,
    ) -> Handler[Any, Any] | None:
        handler = await continuation(details)
        if handler is None:
            return handler
        known = self._rebuilt.get(details.method)
        if known is None or known[0] is not handler:
            known = self._rebuilt[details.method] = (handler, self.rebuild(details.method, handler))
        return known[1]
