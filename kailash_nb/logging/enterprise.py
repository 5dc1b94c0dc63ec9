"""``EnterpriseLogger``: structured logs, one JSON object per line, with context ids,
process metrics, a hash-chained compliance stream and PII redaction.

It is a :class:`logging.LoggerAdapter` over its own standard :class:`logging.Logger`, so
code written for a ``Logger`` (``debug`` ... ``critical``, ``exception``, ``log``,
``isEnabledFor``, ``setLevel``, ``addHandler``) works unchanged::

    logger = EnterpriseLogger(level=logging.INFO, format="json", include_metrics=True,
                              compliance_logging=True, pii_redaction=True)
    orders = logger.bind(component="orders")
    orders.info("order placed by %s", "jane@example.com", order_id="ORD-2024-0042")
    # {"timestamp": "2026-12-06T13:45:01.123Z", "level": "INFO", "logger": "kailash_nb",
    #  "message": "order placed by <redacted:email>", "component": "orders",
    #  "order_id": "ORD-2024-0042", "metrics": {...}, "chain": {"seq": 1, ...}}

Keyword arguments other than ``exc_info``, ``stack_info``, ``stacklevel`` and ``extra``
become fields of the record, as do the keys of ``extra``. Ids set with
:func:`~kailash_nb.logging.log_context` (``run_id``, ``request_id``, ``tenant_id``,
``user_id``) are added to every record logged inside the block.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import IO, Any

from kailash_nb.logging._context import context_fields
from kailash_nb.logging._metrics import process_metrics
from kailash_nb.logging.compliance import ComplianceChain
from kailash_nb.pii import PIIRedactor
from kailash_nb.redaction import redact_value

__all__ = ["EnterpriseLogger"]

_FORMATS = ("json", "text")
_PASSED_ON = frozenset({"exc_info", "stack_info", "stacklevel", "extra"})
_STANDARD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_FIELDS = "kailash_fields"
_PAYLOAD = "kailash_payload"


class _PayloadBuilder(logging.Filter):
    """Turns each record into its payload once, before any handler sees it."""

    def __init__(
        self,
        redactor: PIIRedactor | None,
        include_metrics: bool,
        chain: ComplianceChain | None,
        chain_in_output: bool,
        run_metrics: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__()
        self.run_metrics = run_metrics
        self.redactor = redactor
        self.include_metrics = include_metrics
        self.chain = chain
        self.chain_in_output = chain_in_output
        self.counts: dict[str, int] = {}
        self._counts_lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        with self._counts_lock:
            self.counts[record.levelname] = self.counts.get(record.levelname, 0) + 1
        payload = self._payload(record)
        if self.chain is not None:
            chained = self.chain.chain(payload)
            if self.chain_in_output:
                payload = chained
        setattr(record, _PAYLOAD, payload)
        return True

    def _text(self, text: str) -> str:
        return text if self.redactor is None else self.redactor.redact_text(text)

    def _payload(self, record: logging.LogRecord) -> dict[str, Any]:
        stamp = datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc)
        fields: dict[str, Any] = context_fields()
        fields.update(
            (key, value)
            for key, value in vars(record).items()
            if key not in _STANDARD_ATTRIBUTES and key not in (_FIELDS, _PAYLOAD)
        )
        fields.update(getattr(record, _FIELDS, {}))
        try:
            message = record.getMessage()
        except Exception as exc:  # a bad %-format must not lose the record
            message = f"{record.msg!r} (could not be formatted with its arguments: {exc!r})"
        payload: dict[str, Any] = {
            "timestamp": stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": self._text(message),
        }
        if fields:
            safe = _jsonable(fields, self._text)
            # Secrets under secret-looking keys (password=, api_key=) are masked even
            # without PII redaction.
            safe = redact_value(None, safe) if self.redactor is None else self.redactor.redact(safe)
            payload.update((key, value) for key, value in safe.items() if key not in payload)
        if record.exc_info and record.exc_info[0] is not None:
            kind, error, trace = record.exc_info
            payload["exception"] = {
                "type": f"{kind.__module__}.{kind.__qualname__}",
                "message": self._text(str(error)),
                "traceback": self._text("".join(traceback.format_exception(kind, error, trace))),
            }
        if record.stack_info:
            payload["stack"] = self._text(record.stack_info)
        if self.include_metrics:
            with self._counts_lock:
                counts = dict(self.counts)
            payload["metrics"] = process_metrics(counts)
            if self.run_metrics is not None:
                payload["metrics"]["runs"] = _jsonable(dict(self.run_metrics()), str)
        return payload


def _jsonable(value: Any, text: Any, depth: int = 0) -> Any:
    """``value`` with every object JSON cannot hold turned into (redacted) text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if depth > 64:
        return "<redacted:depth limit>"
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item, text, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(item, text, depth + 1) for item in value]
    try:
        shown = str(value)
    except Exception as exc:  # an object whose __str__ fails is still logged
        shown = f"<{type(value).__name__} (str() failed: {type(exc).__name__})>"
    return text(shown)


class _JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = getattr(record, _PAYLOAD, None)
        if payload is None:
            payload = {"level": record.levelname, "message": record.getMessage()}
        return json.dumps(payload, ensure_ascii=False, default=str)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = dict(getattr(record, _PAYLOAD, None) or {"message": record.getMessage()})
        head = (
            f"{payload.pop('timestamp', '')} {payload.pop('level', record.levelname):<8} "
            f"{payload.pop('logger', record.name)}: {payload.pop('message', '')}"
        )
        exception = payload.pop("exception", None)
        extras = " ".join(
            f"{key}={json.dumps(value, ensure_ascii=False, default=str)}"
            for key, value in payload.items()
        )
        text = f"{head} {extras}" if extras else head
        return f"{text}\n{exception['traceback'].rstrip()}" if exception else text


class EnterpriseLogger(logging.LoggerAdapter):
    """A structured logger for production: JSON lines, context ids, metrics, a
    compliance stream and PII redaction.

    Args:
        level: the lowest level logged (``logging.INFO``, ``"INFO"``).
        format: ``"json"`` (one object per line) or ``"text"`` (for people).
        include_metrics: add ``metrics`` (process RSS, peak RSS, pid, records so far
            by level) to every record.
        compliance_logging: chain every record into an append-only, hash-chained
            stream (:mod:`kailash_nb.logging.compliance`): written to
            ``compliance_sink`` when given, otherwise the log lines themselves carry
            the ``chain`` object.
        pii_redaction: mask PII (:mod:`kailash_nb.pii`) in messages, fields and
            tracebacks, in the log and in the compliance stream.
        name: the logger's name.
        stream: where the log lines go (default ``sys.stderr``).
        handlers: more handlers that receive the same formatted records.
        compliance_sink: a path (appended to; its chain is continued) or a text stream.
        run_metrics: with ``include_metrics``, a callable whose mapping is added as
            ``metrics.runs`` (a runtime's run counters, e.g. ``runtime.get_metrics``).

    Raises:
        ValueError: an unknown ``format`` or level name.
        ComplianceChainError: ``compliance_sink`` is a file whose last line is not a
            chained record.

    A compliance sink that cannot be written makes the logging call raise (the
    ``OSError``): a record is never left out of the compliance stream silently. Any
    other value logged -- unprintable objects, deep or huge structures -- is logged.
    """

    def __init__(
        self,
        level: int | str = logging.INFO,
        format: str = "json",  # noqa: A002 - the Kailash option name
        include_metrics: bool = False,
        compliance_logging: bool = False,
        pii_redaction: bool = False,
        *,
        name: str = "kailash_nb",
        stream: IO[str] | None = None,
        handlers: Iterable[logging.Handler] = (),
        compliance_sink: str | os.PathLike[str] | IO[str] | None = None,
        run_metrics: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        if format not in _FORMATS:
            raise ValueError(f"format must be one of {_FORMATS}, got {format!r}")
        if isinstance(level, str) and not isinstance(logging.getLevelName(level), int):
            raise ValueError(f"unknown log level {level!r}")
        base = logging.Logger(name)  # not registered: two loggers never share handlers
        base.setLevel(level)
        base.propagate = False
        self.chain = ComplianceChain(compliance_sink) if compliance_logging else None
        self.redactor = PIIRedactor() if pii_redaction else None
        base.addFilter(
            _PayloadBuilder(
                self.redactor,
                include_metrics,
                self.chain,
                chain_in_output=compliance_sink is None,
                run_metrics=run_metrics,
            )
        )
        formatter = _JSONFormatter() if format == "json" else _TextFormatter()
        for handler in (logging.StreamHandler(stream or sys.stderr), *handlers):
            handler.setFormatter(formatter)
            base.addHandler(handler)
        super().__init__(base, {})
        self.format = format
        self.include_metrics = include_metrics
        self.compliance_logging = compliance_logging
        self.pii_redaction = pii_redaction

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        """Moves field keywords and ``extra`` into the record's fields."""
        fields = dict(self.extra or {})
        fields.update(kwargs.pop("extra", None) or {})
        for key in [key for key in kwargs if key not in _PASSED_ON]:
            fields[key] = kwargs.pop(key)
        kwargs["extra"] = {_FIELDS: fields}
        return msg, kwargs

    def bind(self, **fields: Any) -> EnterpriseLogger:
        """A logger writing to the same place whose records all carry ``fields``."""
        bound = object.__new__(type(self))
        bound.__dict__.update(self.__dict__)
        bound.extra = {**(self.extra or {}), **fields}
        return bound

    def setLevel(self, level: int | str) -> None:
        """Log records at ``level`` and above from now on."""
        self.logger.setLevel(level)
        # The logger is not in logging's registry, whose setLevel clears only registered
        # loggers' isEnabledFor caches.
        self.logger._cache.clear()

    @property
    def handlers(self) -> list[logging.Handler]:
        """The handlers the records go to."""
        return self.logger.handlers

    def addHandler(self, handler: logging.Handler) -> None:
        """Send records to ``handler`` too (formatted like the others)."""
        handler.setFormatter(self.logger.handlers[0].formatter)
        self.logger.addHandler(handler)

    def removeHandler(self, handler: logging.Handler) -> None:
        """Stop sending records to ``handler``."""
        self.logger.removeHandler(handler)

    def close(self) -> None:
        """Flush the handlers and close the compliance file this logger opened."""
        for handler in self.logger.handlers:
            handler.flush()
        if self.chain is not None:
            self.chain.close()
