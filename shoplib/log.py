"""Structured logging: one JSON line per event, request context bound once per RPC or message."""

from __future__ import annotations

import logging
import os
import re
import sys
import uuid
from contextvars import ContextVar
from typing import Any

import orjson
import structlog

from shoplib.bounds import MAX_CORRELATION_ID_LENGTH

CORRELATION_HEADER = "x-correlation-id"
# A caller's correlation id goes into every log line and event envelope: only this shape is kept.
SAFE_CORRELATION_ID = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_CORRELATION_ID_LENGTH}}}")
correlation_id: ContextVar[str] = ContextVar("correlation_id", default="")


def new_correlation_id() -> str:
    return uuid.uuid4().hex


def accepted_correlation_id(offered: object) -> str | None:
    """`offered` when it is a correlation id we may copy onward (SAFE_CORRELATION_ID), else None."""
    return offered if isinstance(offered, str) and SAFE_CORRELATION_ID.fullmatch(offered) else None


def configure(service: str) -> None:
    """Configure structlog for a service process (LOG_LEVEL, LOG_FORMAT=json|console)."""
    level = getattr(logging, os.environ.get("LOG_LEVEL", "INFO").upper(), logging.INFO)
    renderer, factory = _output(console=os.environ.get("LOG_FORMAT") == "console")
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso", utc=True), structlog.processors.format_exc_info,
                    renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level), logger_factory=factory,
        cache_logger_on_first_use=True)
    structlog.contextvars.bind_contextvars(service=service)


def _output(console: bool) -> tuple[Any, Any]:
    """Renderer and logger factory: readable lines for people, or one JSON line per event as bytes."""
    if console:
        return structlog.dev.ConsoleRenderer(colors=False), structlog.WriteLoggerFactory(file=sys.stdout)
    json_lines = structlog.processors.JSONRenderer(serializer=orjson.dumps)
    return json_lines, structlog.BytesLoggerFactory(file=sys.stdout.buffer)


def bind(**fields: object) -> None:
    """Bind fields to every log line of the current task (RPC or message)."""
    structlog.contextvars.bind_contextvars(**fields)


def get(name: str | None = None) -> structlog.typing.FilteringBoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]
