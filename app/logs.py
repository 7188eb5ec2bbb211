"""Logs: one JSON object per line for machines, one readable line for a terminal.

Every line of the process (Exhaust's, Faust's, aiokafka's: all are standard-library loggers)
goes through one handler whose formatter is structlog's ``ProcessorFormatter``, so every line
has the same shape: ``timestamp``, ``level``, ``logger``, ``event``, and the fields bound to the
work at hand. A job's fields (``request_id``, ``tag``, ``channel``, ``attempt``, and the trace's
``trace_id`` when tracing is on) are bound once where the work starts (:func:`job_context`)
and land on every line logged inside it, whichever library logs it.

``EXHAUST_LOG_FORMAT``: ``json``, ``console``, or ``auto`` (the default: console on a terminal,
JSON otherwise). Two guards sit on the handler:

* :class:`RepeatFilter`: a burst of one message (a broker down makes aiokafka log the same
  warning many times a second) is cut to :data:`REPEATS` lines per :data:`WINDOW_SECONDS`; the
  next line after the window says how many were held back.
* :class:`Redact`: the configured secrets (API keys, the object store's and Kafka's passwords,
  the sealing key) are replaced wherever they would appear in a line.
"""

from __future__ import annotations

import contextlib
import logging
import logging.config
import sys
import time
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any, Literal

import structlog

from app import tracing

LogFormat = Literal["auto", "json", "console"]
REPEATS = 5  # lines of one message let through per window
WINDOW_SECONDS = 10.0
MAX_MESSAGES = 1_000  # distinct messages tracked by the repeat filter (a bound on its memory)
SECRET_MIN_LENGTH = 8  # shorter "secrets" (defaults, test values) would redact ordinary words


@dataclass
class _Window:
    start: float
    count: int = 0
    held: int = 0


class RepeatFilter(logging.Filter):
    """Lets through at most ``limit`` records of one message per ``window`` seconds.

    A message is its logger, level and template (``record.msg``, before its arguments), so a
    thousand "connection to 10.0.0.3 failed" lines with different addresses are one message.
    Only warnings and errors are cut: an info line is a job's own record ("generating r-7",
    "r-7 COMPLETED"), and a busy worker writes the same template for every job.
    """

    def __init__(
        self,
        limit: int = REPEATS,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.limit, self.window, self.clock = limit, window, clock
        self._seen: dict[tuple[str, int, str], _Window] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        seen = self._seen.get(key)
        if seen is None or now - seen.start >= self.window:
            if len(self._seen) >= MAX_MESSAGES:
                self._seen.clear()
            self._seen[key] = _Window(now, 1)
            if seen is not None and seen.held:
                record.repeats_held_back = seen.held  # said on the first line after a burst
            return True
        seen.count += 1
        if seen.count <= self.limit:
            return True
        seen.held += 1
        return False


class Redact:
    """A structlog processor: every configured secret in a line's values becomes ``[redacted]``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = sorted({s for s in secrets if len(s) >= SECRET_MIN_LENGTH}, key=len)[::-1]

    def __call__(
        self, logger: Any, name: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        if self.secrets:
            for field, value in event.items():
                if isinstance(value, str):
                    for secret in self.secrets:
                        if secret in value:
                            value = value.replace(secret, "[redacted]")
                    event[field] = value
        return event


def _resolved(form: LogFormat) -> Literal["json", "console"]:
    if form == "auto":
        return "console" if sys.stderr.isatty() else "json"
    return form


def add_trace_id(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> Any:
    """The current trace's id on a line logged inside a span (traces on only)."""
    if tracing.ON and "trace_id" not in event:
        found = tracing.trace_id()
        if found is not None:
            event["trace_id"] = found
    return event


def logging_config(level: str, form: LogFormat, secrets: Iterable[str] = ()) -> dict[str, Any]:
    """The ``logging.config.dictConfig`` of a process (also handed to Faust's worker, which
    would otherwise install its own handler)."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        add_trace_id,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if _resolved(form) == "json":
        rendering: list[Any] = [
            structlog.processors.format_exc_info,
            Redact(secrets),
            structlog.processors.JSONRenderer(),
        ]
    else:
        rendering = [
            Redact(secrets),
            structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()),
        ]
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"repeats": {"()": RepeatFilter}},
        "formatters": {
            "exhaust": {
                "()": structlog.stdlib.ProcessorFormatter,
                "foreign_pre_chain": shared,
                "processors": [
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    *rendering,
                ],
            }
        },
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "exhaust",
                "filters": ["repeats"],
            }
        },
        "root": {"level": level.upper(), "handlers": ["default"]},
    }


def configure(level: str, form: LogFormat, secrets: Iterable[str] = ()) -> dict[str, Any]:
    """Install the logging of this process; returns its configuration (for Faust's worker)."""
    config = logging_config(level, form, secrets)
    logging.config.dictConfig(config)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    return config


@contextlib.contextmanager
def job_context(
    request_id: str, tag: str, channel: str, attempt: int | None = None
) -> Iterator[None]:
    """Bind a job's fields to every line logged inside (this task and those it starts)."""
    fields: dict[str, Any] = {"request_id": request_id, "tag": tag, "channel": channel}
    if attempt is not None:
        fields["attempt"] = attempt
    with structlog.contextvars.bound_contextvars(**fields):
        yield


__all__ = ["LogFormat", "Redact", "RepeatFilter", "configure", "job_context", "logging_config"]
