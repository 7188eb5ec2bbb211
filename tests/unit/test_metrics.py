from __future__ import annotations

from app.metrics import Metrics


def test_counters_and_histograms_render_as_prometheus_text() -> None:
    metrics = Metrics()
    metrics.transition("started")
    metrics.transition("started")
    metrics.count("requests_received", 3)
    metrics.dead_letter("UNKNOWN_SCHEMA")
    metrics.observe_submit(12)
    metrics.observe_generation("COMPLETED", 0.5, rows=100, size=2048)
    text = metrics.render().decode()
    assert 'exhaust_transitions_total{outcome="started"} 2.0' in text
    assert 'exhaust_pipeline_total{event="requests_received"} 3.0' in text
    assert 'exhaust_dead_letters_total{code="UNKNOWN_SCHEMA"} 1.0' in text
    assert 'exhaust_submit_latency_seconds_bucket{le="0.025"} 1.0' in text
    assert "exhaust_generated_rows_sum 100.0" in text
    assert metrics.value("exhaust_transitions_total", outcome="started") == 2
    assert metrics.value("exhaust_transitions_total", outcome="failed") == 0


def test_each_instance_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()
    a.transition("failed")
    assert b.value("exhaust_transitions_total", outcome="failed") == 0
