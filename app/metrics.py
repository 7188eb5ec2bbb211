"""Process metrics, exposed as Prometheus text on ``GET /metrics``.

Counter names are the state machine's :data:`~app.state_machine.Counter` literals plus the
pipeline's own :data:`PipelineCounter`, so a typo fails type checking.
"""

from __future__ import annotations

from collections import Counter as _Counter
from typing import Literal

from app.state_machine import Counter as TransitionCounter

PipelineCounter = Literal[
    "requests_received",
    "job_events_received",
    "work_items_received",
    "dead_lettered",
    "ticks_sent",
    "read_model_records",
]


class Metrics:
    def __init__(self) -> None:
        self.transitions: _Counter[str] = _Counter()
        self.pipeline: _Counter[str] = _Counter()
        self.dead_letters: _Counter[str] = _Counter()
        self.gauges: dict[str, float] = {}

    def transition(self, name: TransitionCounter) -> None:
        self.transitions[name] += 1

    def count(self, name: PipelineCounter, n: int = 1) -> None:
        self.pipeline[name] += n

    def dead_letter(self, code: str) -> None:
        self.pipeline["dead_lettered"] += 1
        self.dead_letters[code] += 1

    def render(self) -> str:
        lines = [
            "# HELP exhaust_transitions_total Job state machine outcomes.",
            "# TYPE exhaust_transitions_total counter",
        ]
        lines += [
            f'exhaust_transitions_total{{outcome="{k}"}} {v}'
            for k, v in sorted(self.transitions.items())
        ]
        lines += ["# TYPE exhaust_pipeline_total counter"]
        lines += [
            f'exhaust_pipeline_total{{event="{k}"}} {v}' for k, v in sorted(self.pipeline.items())
        ]
        lines += ["# TYPE exhaust_dead_letters_total counter"]
        lines += [
            f'exhaust_dead_letters_total{{code="{k}"}} {v}'
            for k, v in sorted(self.dead_letters.items())
        ]
        for name, value in sorted(self.gauges.items()):
            lines += [f"# TYPE exhaust_{name} gauge", f"exhaust_{name} {value}"]
        return "\n".join(lines) + "\n"
