"""Calls between services: outbound channels and calls (retries, deadlines, balancing), the
server interceptors (context, access log, status mapping, request guard) and their spans. May
import shoplib's root, shoplib.store (outage rules), shoplib.streams (span attribute names),
shoplib.observability and shoplib.security."""
