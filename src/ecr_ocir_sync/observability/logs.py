"""JSON-lines logs carrying job id, repository, tag, digest and destination.

python-json-logger writes the lines; which fields go in stays decided here.
Only whitelisted context fields are written (never a record's other extras), so
a credential can reach a log line only through a message or exception text, and
none includes one. A logged exception keeps its class (``error_type``) and its
whole formatted traceback (``traceback``).
"""

from __future__ import annotations

import contextvars
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from pythonjsonlogger.json import JsonFormatter as _LibraryJsonFormatter

__all__ = ["configure_logging", "log_context"]

_CONTEXT_FIELDS = ("job_id", "action", "repository", "tag", "digest", "destination", "attempt")
_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "log_context", default=None
)


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Attach ``fields`` to every log line written inside the block (per asyncio task)."""
    token = _context.set({**(_context.get() or {}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


class JsonFormatter(_LibraryJsonFormatter):
    """One JSON object per line: time, level, logger, message, the context fields, and for a
    logged exception its ``error_type`` and ``traceback``."""

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        # Not the library's default (every extra on the record): only the fields named here.
        log_data["time"] = (
            time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z"
        )
        log_data["level"] = record.levelname.lower()
        log_data["logger"] = record.name
        log_data["message"] = record.getMessage()
        fields = {**(_context.get() or {}), **record.__dict__}
        log_data.update(
            {key: fields[key] for key in _CONTEXT_FIELDS if fields.get(key) is not None}
        )
        if record.exc_info and record.exc_info[0] is not None:
            log_data["error_type"] = record.exc_info[0].__name__
        # The library formats exc_info (and a cached exc_text) into message_dict.
        if message_dict.get("exc_info"):
            log_data["traceback"] = message_dict["exc_info"]
        if message_dict.get("stack_info"):
            log_data["stack"] = message_dict["stack_info"]


def configure_logging(level: str, stream: TextIO | None = None) -> None:
    """JSON lines to ``stream`` (stdout unless given) for every logger."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs request lines at INFO; keep them out, they add nothing a metric lacks.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    logging.getLogger("botocore").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
