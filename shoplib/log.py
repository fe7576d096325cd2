"""Structured logging: one JSON line per event, request context bound once per RPC or message."""

from __future__ import annotations

import logging
import os
import re
import sys
from contextvars import ContextVar
from typing import Any

import orjson
import structlog
from structlog.typing import EventDict, WrappedLogger

from shoplib.rules import ids
from shoplib.rules.bounds import MAX_CORRELATION_ID_LENGTH

CORRELATION_HEADER = "x-correlation-id"
# A caller's correlation id goes into every log line and event envelope: only this shape is kept.
SAFE_CORRELATION_ID = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_CORRELATION_ID_LENGTH}}}")
correlation_id: ContextVar[str] = ContextVar("correlation_id", default="")
# The least level `configure` lets through; NOTSET (every level) until then, as structlog's
# default configuration writes every level. See `debugging`.
_least_level = logging.NOTSET


def new_correlation_id() -> str:
    return ids.uuid4_text().replace("-", "")  # uuid4().hex, from the batched secure source


def accepted_correlation_id(offered: object) -> str | None:
    """`offered` when it is a correlation id we may copy onward (SAFE_CORRELATION_ID), else None."""
    return offered if isinstance(offered, str) and SAFE_CORRELATION_ID.fullmatch(offered) else None


def configure(service: str) -> None:
    """Configure structlog for a service process (LOG_LEVEL, LOG_FORMAT=json|console)."""
    global _least_level
    level = getattr(logging, os.environ.get("LOG_LEVEL", "INFO").upper(), logging.INFO)
    _least_level = level
    renderer, factory = _output(console=os.environ.get("LOG_FORMAT") == "console")
    structlog.configure(
        processors=[_merge_bound, structlog.contextvars.merge_contextvars, structlog.processors.add_log_level,
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


# Fields bound to the current task by `bind`: one context variable holding them all, replaced
# (never changed in place) at each bind, so a task started later keeps the fields of its start.
_bound: ContextVar[dict[str, object]] = ContextVar("log_bound", default={})  # noqa: B039 (never mutated)


def bind(**fields: object) -> None:
    """Bind fields to every log line of the current task (RPC or message). One context variable
    is set per call, whatever the number of fields (structlog's bind_contextvars sets one per
    field); they are merged into a line only when a line is written (`_merge_bound`)."""
    _bound.set({**_bound.get(), **fields})


def _merge_bound(logger: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
    """The processor adding `bind`'s fields to a line: the line's own fields win over them, and
    they over structlog's context (the interceptor's, bound before any `bind` of the same task)."""
    bound = _bound.get()
    return {**bound, **event_dict} if bound else event_dict


def debugging() -> bool:
    """Whether debug lines are written: a hot path skips computing a debug line's fields (and
    the logger's proxy lookup) when they are not, as on every event at the default INFO."""
    return _least_level <= logging.DEBUG


def get(name: str | None = None) -> structlog.typing.FilteringBoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return]
