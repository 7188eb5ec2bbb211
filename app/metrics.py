"""Process metrics on ``GET /metrics``, through prometheus-client.

Each :class:`Metrics` owns its own ``CollectorRegistry`` (several live in one test process).
Counter names are the state machine's :data:`~app.domain.state_machine.Counter` literals plus the
pipeline's own :data:`PipelineCounter`, so a typo fails type checking.
"""

from __future__ import annotations

from typing import Literal

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from app.domain.state_machine import Counter as TransitionCounter

PipelineCounter = Literal[
    "requests_received",
    "job_events_received",
    "work_items_received",
    "dead_lettered",
    "ticks_sent",
    "read_model_records",
    "standard_jobs_submitted",
    "work_items_stopped",
    "attempts_discarded",
    "legacy_keys_migrated",
    "writer_fenced",
    "writer_batches_abandoned",
    "writer_events_abandoned",
    "writer_events_out_of_order",
]

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600)
SIZE_BUCKETS = tuple(float(10**i) for i in range(0, 11))
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 10_000)

__all__ = ["CONTENT_TYPE", "Metrics", "PipelineCounter"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self._transitions = Counter(
            "exhaust_transitions", "Job state machine outcomes.", ["outcome"], registry=r
        )
        self._pipeline = Counter(
            "exhaust_pipeline", "Events handled by the pipeline.", ["event"], registry=r
        )
        self._dead_letters = Counter(
            "exhaust_dead_letters", "Messages sent to the dead-letter topic.", ["code"], registry=r
        )
        self.submit_latency = Histogram(
            "exhaust_submit_latency_seconds",
            "Request submitted_at to its job written SUBMITTED by the writer.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.writer_batches = Histogram(
            "exhaust_writer_batch_events",
            "Events a writer decided and wrote as one batch (the events already buffered).",
            ["agent"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.generation_seconds = Histogram(
            "exhaust_generation_seconds",
            "Duration of generation attempts, by outcome.",
            ["outcome"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.generated_rows = Histogram(
            "exhaust_generated_rows",
            "Rows of successful attempts.",
            buckets=SIZE_BUCKETS,
            registry=r,
        )
        self.generated_bytes = Histogram(
            "exhaust_generated_bytes",
            "Bytes uploaded by successful attempts.",
            buckets=SIZE_BUCKETS,
            registry=r,
        )
        self.work_lag = Gauge(
            "exhaust_work_lag",
            "Work items not yet committed by the generators (all partitions).",
            registry=r,
        )
        self.generations_running = Gauge(
            "exhaust_generations_running",
            "Attempts this worker is generating now.",
            registry=r,
        )
        self.read_model_lag = Gauge(
            "exhaust_read_model_lag",
            "Records of exhaust.jobs not yet in this worker's read model (read_model: the "
            "API's; id_index: the writer's), as of the last fetch.",
            ["model"],
            registry=r,
        )
        self.stalled_partitions = Gauge(
            "exhaust_watchdog_stalled_partitions",
            "Partitions with lag that made no progress for the watchdog's window.",
            ["consumer"],
            registry=r,
        )
        self.stalls = Counter(
            "exhaust_watchdog_stalls",
            "Stalled partitions detected by the watchdog.",
            ["consumer"],
            registry=r,
        )
        self.recoveries = Counter(
            "exhaust_watchdog_recoveries",
            "Recovery actions taken by the watchdog (resume and seek, or restart).",
            ["consumer", "action"],
            registry=r,
        )
        self.fills = Counter(
            "exhaust_fills",
            "Dataset fills by outcome: at the API (accepted, refused, pending, busy) and at the "
            "writer (fill_applied, fill_rejected, fill_repeated, fill_redelivered).",
            ["outcome"],
            registry=r,
        )
        self.fill_rows = Counter("exhaust_fill_rows", "Rows of applied fills.", registry=r)
        self.fill_seconds = Histogram(
            "exhaust_fill_seconds",
            "POST /dataset-fill: decode, convert, stage and publish (not the wait).",
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.segments_deleted = Counter(
            "exhaust_dataset_segments_deleted",
            "Retired segments deleted after their grace period.",
            registry=r,
        )
        self.orphans_deleted = Counter(
            "exhaust_orphans_deleted",
            "Objects and unfinished uploads of dead attempts deleted (by the janitor, or by a "
            "generator when an attempt reported its end after it was superseded).",
            registry=r,
        )
        # Label children are cached: .labels() costs more than the increment itself.
        self._t: dict[str, Counter] = {}
        self._p: dict[str, Counter] = {}

    def transition(self, name: TransitionCounter) -> None:
        child = self._t.get(name)
        if child is None:
            child = self._t[name] = self._transitions.labels(name)
        child.inc()

    def count(self, name: PipelineCounter, n: int = 1) -> None:
        child = self._p.get(name)
        if child is None:
            child = self._p[name] = self._pipeline.labels(name)
        child.inc(n)

    def dead_letter(self, code: str) -> None:
        self.count("dead_lettered")
        self._dead_letters.labels(code).inc()

    def observe_submit(self, latency_ms: int) -> None:
        self.submit_latency.observe(max(0, latency_ms) / 1000)

    def observe_generation(self, outcome: str, seconds: float, rows: int, size: int) -> None:
        self.generation_seconds.labels(outcome).observe(seconds)
        if outcome == "COMPLETED":
            self.generated_rows.observe(rows)
            self.generated_bytes.observe(size)

    def set_work_lag(self, lag: int) -> None:
        self.work_lag.set(lag)

    def value(self, name: str, **labels: str) -> float:
        """A sample's current value (0 when absent), e.g. ``value("exhaust_transitions_total",
        outcome="started")``."""
        found = self.registry.get_sample_value(name, labels)
        return 0.0 if found is None else found

    def render(self) -> bytes:
        return generate_latest(self.registry)
