"""One trace from ``POST /v1/requests`` to SUCCESS, across the API, the writer and a generator
in three processes, exported over OTLP/HTTP (as ``OTEL_*`` variables configure it) to a
receiver in this test."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from app.settings import Settings
from tests.integration.harness import Worker, eventually, read_topic

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Span:
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    role: str
    attributes: dict[str, object]


class Receiver:
    """An OTLP/HTTP trace endpoint on loopback that keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/v1/traces", self.export)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def export(self, request: web.Request) -> web.Response:
        body = ExportTraceServiceRequest.FromString(await request.read())
        for resource in body.resource_spans:
            attrs = {a.key: a.value.string_value for a in resource.resource.attributes}
            for scope in resource.scope_spans:
                for span in scope.spans:
                    self.spans.append(Span(
                        span.trace_id.hex(), span.span_id.hex(), span.parent_span_id.hex(),
                        span.name, attrs.get("exhaust.role", ""),
                        {a.key: _value(a.value) for a in span.attributes},
                    ))  # fmt: skip
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(),
            content_type="application/x-protobuf",
        )

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def _value(value: object) -> object:
    kind = value.WhichOneof("value")  # type: ignore[attr-defined]
    return getattr(value, kind) if kind else None


async def test_one_trace_follows_a_request_through_three_processes_to_success(
    settings_factory: Callable[..., Settings], workers: list[Worker]
) -> None:
    settings = settings_factory()
    receiver = await Receiver().start()
    try:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "OTEL_SERVICE_NAME": "exhaust-test",
        }
        started = [Worker(settings, role, role=role, env=env).start()
                   for role in ("processor", "generator", "api")]  # fmt: skip
        workers.extend(started)
        for worker in started:
            await worker.wait_ready()
        api = started[2]

        status, answer = await api.post(
            "/v1/requests", {"tag": "traced", "dataset": "demo-export", "config": {"rows": 500}},
            channel="acme",
        )  # fmt: skip
        assert status == 202, answer
        job_id = answer["request_id"]

        async def succeeded() -> bool:
            code, job = await api.get(f"/v1/jobs/{job_id}", channel="acme")
            return code == 200 and job["status"] == "SUCCESS"

        await eventually(succeeded, 90, "the job's SUCCESS")

        def the_trace() -> list[Span]:
            roots = [s for s in receiver.spans if s.role == "api" and "/v1/requests" in s.name]
            if not roots:
                return []
            return [s for s in receiver.spans if s.trace_id == roots[0].trace_id]

        async def complete() -> list[Span]:
            found = the_trace()
            names = {(s.role, s.name) for s in found}
            return found if ("processor", "exhaust.writer COMPLETED") in names else []

        spans = await eventually(complete, 30, "the trace's last span")
        by_name = {s.name: s for s in spans}
        ids = {s.span_id for s in spans}
        roles = {s.role for s in spans}
        assert roles == {"api", "processor", "generator"}, sorted((s.role, s.name) for s in spans)
        decision = by_name["exhaust.writer request"]
        assert decision.role == "processor" and decision.parent_id in ids  # the API's send
        generate = by_name["exhaust.generate demo-export"]
        assert generate.role == "generator" and generate.parent_id == decision.span_id
        assert generate.attributes["exhaust.request_id"] == job_id
        s3 = [s for s in spans if s.attributes.get("rpc.service") == "S3"]
        assert s3 and all(s.role == "generator" for s in s3)  # the uploads, in the trace
        completed = by_name["exhaust.writer COMPLETED"]
        assert completed.parent_id in ids

        # The status records carry the job's trace; the generator's log lines its id.
        records = [r for r in await read_topic(settings, "jobs")
                   if r.key == f"acme/{job_id}".encode()]  # fmt: skip
        last = dict(records[-1].headers)
        assert last["ce_type"] == b"dev.exhaust.job.SUCCESS"
        assert last["ce_traceparent"].decode().split("-")[1] == decision.trace_id
        lines = [json.loads(line) for line in started[1].log_path.read_text().splitlines()
                 if line.startswith("{")]  # fmt: skip
        job_lines = [line for line in lines if line.get("request_id") == job_id]
        assert job_lines and all(line["trace_id"] == decision.trace_id for line in job_lines)
    finally:
        await receiver.stop()
