"""Logging, configured in one place for our loggers and uvicorn's: text or JSON lines.

``LOG_FORMAT=json`` writes one JSON object per line, with one schema for the application's
lines and the access log: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, then
fields. The fields come from ``extra={...}`` on the call and from the context the line was
written in: the HTTP request's ``request_id`` (set per request, ``api/request_ids.py``) and
the ``webhook_id``/``delivery_id`` of the delivery being attempted (``delivery``, set by the
dispatcher around each attempt), so a line written deep in the sender still says which webhook
it is about. An access line adds
``client``, ``method``, ``path``, ``http_version`` and ``status``. ``LOG_FORMAT=text`` (the
default) writes the same fields as ``key=value`` after the message.

Every message goes through ``redaction.redact``: a token or an API key that reached a message
by mistake is cut out, and control characters cannot forge a line.
"""

from __future__ import annotations

import json
import logging
import logging.config
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

from .redaction import redact

LogFormat = Literal["text", "json"]

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
# (webhook id, delivery id) of the attempt being made; the dispatcher sets and resets it
# itself on its hot path (a ``with delivery_context(...)`` costs a generator per delivery)
delivery: ContextVar[tuple[str, str] | None] = ContextVar("delivery", default=None)

# what every LogRecord has; anything else on a record came from ``extra`` and is a field
_NOT_FIELDS = ("message", "asctime", "color_message", "taskName")
_STANDARD = frozenset([*logging.LogRecord("", 0, "", 0, "", None, None).__dict__, *_NOT_FIELDS])
_ACCESS_FIELDS = ("client", "method", "path", "http_version", "status")


@contextmanager
def delivery_context(webhook_id: str, delivery_id: str) -> Iterator[None]:
    """Every line written inside the block names this webhook and delivery."""
    token = delivery.set((webhook_id, delivery_id))
    try:
        yield
    finally:
        delivery.reset(token)


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """A line's fields: its context's, the access log's, then those given with ``extra``."""
    fields: dict[str, Any] = {}
    current_request = request_id.get()
    if current_request is not None:
        fields["request_id"] = current_request
    current_delivery = delivery.get()
    if current_delivery is not None:
        fields["webhook_id"], fields["delivery_id"] = current_delivery
    args = record.args
    if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
        fields.update(zip(_ACCESS_FIELDS, args, strict=True))
    for name, value in record.__dict__.items():
        if name not in _STANDARD and not name.startswith("_"):
            fields[name] = value
    return fields


class JsonLines(logging.Formatter):
    """One JSON object per line (``LOG_FORMAT=json``)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for name, value in fields_of(record).items():
            entry.setdefault(name, value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextLines(logging.Formatter):
    """``time level logger message key=value...`` (``LOG_FORMAT=text``, the default)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = redact(record.message)
        line = super().formatMessage(record)
        fields = fields_of(record)
        if record.name == "uvicorn.access":  # its message already says all of them
            for name in _ACCESS_FIELDS:
                fields.pop(name, None)
        return " ".join([line, *(f"{name}={value}" for name, value in fields.items())])


def configure(log_format: LogFormat = "text", level: int = logging.INFO) -> None:
    """Send every line, ours and uvicorn's (its error and access logs), to stderr in one
    format. uvicorn is then given ``log_config=None`` (``api/server.py``) so it keeps this."""
    formatter = JsonLines if log_format == "json" else TextLines
    root = logging.getLogger()
    if root.level != logging.NOTSET and root.level < level:
        level = root.level  # asked for more already (a sitecustomize at DEBUG): never less
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"lines": {"()": formatter}},
            "handlers": {
                "stderr": {
                    "class": "logging.StreamHandler",
                    "stream": "ext://sys.stderr",
                    "formatter": "lines",
                }
            },
            "root": {"level": level, "handlers": ["stderr"]},
            "loggers": {
                # uvicorn's own handlers go: its lines reach ours through the root
                "uvicorn": {"handlers": [], "propagate": True},
                "uvicorn.error": {"handlers": [], "propagate": True},
                "uvicorn.access": {"handlers": [], "propagate": True},
                "alembic": {"level": "WARNING"},
            },
        }
    )
