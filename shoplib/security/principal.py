"""Who a verified bearer token speaks for, and the refusal of a call without one. Light on
purpose (no JWT library): the gateway's servicer and every plaintext service import it, and a
service's start time is part of how quickly a failed start is reported."""

from __future__ import annotations

from dataclasses import dataclass

from shoplib.errors import ServiceError

OPERATOR_SCOPE = "shop:operator"  # may act for any customer (support staff, the demos)


class Unauthenticated(ServiceError):
    code = "UNAUTHENTICATED"


@dataclass(frozen=True)
class Principal:
    """Who a verified token speaks for: its subject (a customer id) and scopes."""

    subject: str
    scopes: frozenset[str]

    def may_act_for(self, customer_id: str) -> bool:
        return self.subject == customer_id or OPERATOR_SCOPE in self.scopes
