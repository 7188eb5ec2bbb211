"""Traces: when they are on, and the context carried by hand through the writer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from app import tracing
from app.domain.errors import ConfigurationError


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("test"))
    monkeypatch.setattr(tracing, "ON", True)
    yield exporter


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, False),  # off by default
        ({"OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console", "OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_traces_are_on_only_when_the_standard_variables_ask(env: dict[str, str], on: bool) -> None:
    assert tracing.wanted(env) is on


@pytest.mark.parametrize(
    "env",
    [{"OTEL_TRACES_EXPORTER": "zipkin"},
     {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}],
)  # fmt: skip
def test_an_exporter_this_build_lacks_is_refused_by_name(env: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError, match="OTEL_"):
        list(tracing._exporters(env))


def test_the_traceparent_header_is_read_from_pairs_or_a_mapping_and_bounded() -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert tracing.header_value([("x", b"1"), ("traceparent", parent.encode())]) == parent
    assert tracing.header_value({"traceparent": parent.encode()}) == parent
    assert tracing.header_value(None) is None
    assert tracing.header_value([("traceparent", "not bytes")]) is None
    assert tracing.header_value([("traceparent", b"0" * 1000)]) is None


def test_the_writer_decision_continues_the_request_and_the_generator_continues_it(
    exported: InMemorySpanExporter,
) -> None:
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    decision = tracing.consumer_span("exhaust.writer request", parent, **{"exhaust.tag": "t"})
    carried = tracing.traceparent_of(decision)  # what the job and its work item keep
    decision.end()
    assert carried is not None and carried.split("-")[1] == "0af7651916cd43dd8448eb211c80319c"
    with tracing.continued("exhaust.generate demo-export", carried) as run:
        assert tracing.trace_id() == "0af7651916cd43dd8448eb211c80319c"
        assert run is not None
    with tracing.attached(carried):
        assert tracing.current_traceparent() == carried  # a send here joins the job's trace
    assert tracing.trace_id() is None  # detached again
    first, second = exported.get_finished_spans()
    assert first.parent is not None and first.parent.span_id == 0xB7AD6B7169203331
    assert second.parent is not None and second.parent.span_id == first.context.span_id


def test_off_nothing_is_started(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing, "ON", False)
    with tracing.continued("x", None) as span, tracing.attached("00-ab-cd-01"):
        assert span is None and tracing.trace_id() is None
