"""Traces: OpenTelemetry, off unless the standard ``OTEL_*`` variables turn it on.

One trace follows a job from its ``POST`` to its last status: the HTTP server span (aiohttp
instrumentation), the request's send (aiokafka instrumentation, which writes the W3C
``traceparent`` header), the writer's decision, the generator's run with its object-store calls
(aiobotocore instrumentation) and event sends, and the writer's decision on each event.

The writer is the one hop no instrumentation covers: Faust consumes through its own loop and its
table writes are sent by a background task, so the context is carried by hand. The writer
extracts a request's ``traceparent`` header (:func:`consumer_span`), and the job keeps the
context of that decision as ``trace_parent`` (JobStatus and WorkItem fields): the generator
continues it (also for a retried or redispatched attempt), and every status record carries it
as ``ce_traceparent`` (the CloudEvents distributed-tracing extension).

On when ``OTEL_TRACES_EXPORTER`` names an exporter (``otlp``, ``console``; ``none`` is off) or an
OTLP endpoint is set (``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``),
and ``OTEL_SDK_DISABLED`` is not ``true``. The OTLP exporter speaks HTTP/protobuf; the service
name is ``OTEL_SERVICE_NAME`` (default ``exhaust``) and every other ``OTEL_*`` setting (batch
delays, resource attributes, headers) is read by the SDK itself. Off, nothing is instrumented
and the writer's hot path pays one boolean test per event.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from app.domain.errors import ConfigurationError

ON = False  # set by configure(): every hot-path hook tests it before doing anything
TRACEPARENT = "traceparent"
_tracer: trace.Tracer = trace.get_tracer("exhaust")
_provider: Any = None


def wanted(env: Mapping[str, str] | None = None) -> bool:
    """Whether the ``OTEL_*`` variables ask for traces (see the module docstring)."""
    env = os.environ if env is None else env
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = env.get("OTEL_TRACES_EXPORTER")
    if exporters is not None:
        return any(e.strip().lower() not in ("", "none") for e in exporters.split(","))
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or
                env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))  # fmt: skip


def configure(role: str, env: Mapping[str, str] | None = None, exporter: Any = None) -> bool:
    """Install the SDK and the instrumentations when :func:`wanted` (or when a test hands in
    an ``exporter``); whether traces are on. Call before the HTTP application is built."""
    global ON, _tracer, _provider
    env = os.environ if env is None else env
    if exporter is None and not wanted(env):
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    resource = Resource.create(
        {"service.name": env.get("OTEL_SERVICE_NAME") or "exhaust", "exhaust.role": role}
    )
    provider = TracerProvider(resource=resource)
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    for built in _exporters(env):
        provider.add_span_processor(BatchSpanProcessor(built))
    trace.set_tracer_provider(provider)
    _provider = provider
    _tracer = provider.get_tracer("exhaust")
    _instrument(provider)
    ON = True
    return True


def _exporters(env: Mapping[str, str]) -> Iterator[Any]:
    names = [e.strip().lower() for e in env.get("OTEL_TRACES_EXPORTER", "otlp").split(",")]
    for name in names:
        if name in ("", "none"):
            continue
        if name == "otlp":
            protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get(
                "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
            )
            if protocol != "http/protobuf":
                raise ConfigurationError(
                    f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: this build exports traces over "
                    "http/protobuf only (point it at the collector's port 4318)"
                )
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            yield OTLPSpanExporter()
        elif name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            yield ConsoleSpanExporter()
        else:
            raise ConfigurationError(
                f"OTEL_TRACES_EXPORTER={name}: known exporters are otlp, console and none"
            )


def _instrument(provider: Any) -> None:
    from opentelemetry.instrumentation.aiohttp_server import AioHttpServerInstrumentor
    from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor
    from opentelemetry.instrumentation.botocore import AiobotocoreInstrumentor

    s3: Any = AiobotocoreInstrumentor()  # type: ignore[no-untyped-call]
    for instrumentor in (AioHttpServerInstrumentor(), AIOKafkaInstrumentor(), s3):
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(tracer_provider=provider)


def shutdown() -> None:
    """Export what is buffered (a worker's last spans) before the process exits."""
    if _provider is not None:
        _provider.shutdown()


# --- the hand-carried context -----------------------------------------------------------------


def header_value(headers: Iterable[tuple[str, Any]] | Mapping[str, Any] | None) -> str | None:
    """The ``traceparent`` of a Kafka record's headers (pairs or a mapping), or None."""
    if not headers:
        return None
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    for key, value in pairs:
        if key == TRACEPARENT and isinstance(value, bytes | bytearray):
            text = bytes(value).decode("ascii", "replace")
            return text if len(text) <= 128 else None  # a hostile header stays bounded
    return None


def _context(traceparent: str | None) -> otel_context.Context | None:
    if traceparent is None:
        return None
    return propagate.extract({TRACEPARENT: traceparent})


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, or None when there is none."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get(TRACEPARENT)


def consumer_span(name: str, traceparent: str | None, **attributes: Any) -> Any:
    """A started span (CONSUMER) continuing ``traceparent``; the caller ends it. The writer's
    decisions use it: their spans end after the batch's effects are performed."""
    return _tracer.start_span(
        name, context=_context(traceparent), kind=SpanKind.CONSUMER, attributes=attributes
    )


def traceparent_of(span: Any) -> str | None:
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    return carrier.get(TRACEPARENT)


@contextlib.contextmanager
def continued(name: str, traceparent: str | None, **attributes: Any) -> Iterator[Any]:
    """A current span continuing ``traceparent`` (the generator's run of an attempt); nothing
    when traces are off."""
    if not ON:
        yield None
        return
    token = otel_context.attach(_context(traceparent) or otel_context.Context())
    try:
        with _tracer.start_as_current_span(name, attributes=attributes) as span:
            yield span
    finally:
        otel_context.detach(token)


@contextlib.contextmanager
def attached(traceparent: str | None) -> Iterator[None]:
    """``traceparent`` as the current context (a send inside joins that trace); nothing when
    traces are off or there is none."""
    if not ON or traceparent is None:
        yield
        return
    token = otel_context.attach(_context(traceparent) or otel_context.Context())
    try:
        yield
    finally:
        otel_context.detach(token)


def end_all(spans: Sequence[Any]) -> None:
    for span in spans:
        span.end()


def trace_id() -> str | None:
    """The current trace's id (32 hex digits) for the logs, or None."""
    found = trace.get_current_span().get_span_context()
    return f"{found.trace_id:032x}" if found.is_valid else None


__all__ = [
    "ON",
    "TRACEPARENT",
    "attached",
    "configure",
    "consumer_span",
    "continued",
    "current_traceparent",
    "end_all",
    "header_value",
    "shutdown",
    "trace_id",
    "traceparent_of",
    "wanted",
]
