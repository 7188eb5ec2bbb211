"""The logs: one JSON object per line with the job's fields, bursts cut, secrets redacted."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Iterator

import pytest

from app.logs import RepeatFilter, job_context, logging_config


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    config = logging_config("info", "json", secrets=["s3cr3t-api-key-0001", "short"])
    config["handlers"]["default"]["stream"] = stream
    logging.config.dictConfig(config)
    yield stream
    root.handlers[:] = handlers
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_is_json_with_the_jobs_fields_whichever_logger_writes_it(
    captured: io.StringIO,
) -> None:
    with job_context("r-1", "daily", "acme", attempt=2):
        logging.getLogger("a.library").warning("connection to %s lost", "10.0.0.3")
    logging.getLogger("exhaust").info("outside any job")
    first, second = lines(captured)
    assert first["event"] == "connection to 10.0.0.3 lost" and first["level"] == "warning"
    assert (first["request_id"], first["tag"], first["channel"], first["attempt"]) == (
        "r-1", "daily", "acme", 2
    )  # fmt: skip
    assert first["logger"] == "a.library" and "timestamp" in first
    assert "request_id" not in second


def test_configured_secrets_never_reach_a_line(captured: io.StringIO) -> None:
    log = logging.getLogger("exhaust")
    log.error("refused key %s", "s3cr3t-api-key-0001")
    log.info("a word: short")  # too short to be treated as a secret
    try:
        raise ValueError("s3cr3t-api-key-0001 in a traceback")
    except ValueError:
        log.exception("failed")
    text = captured.getvalue()
    assert "s3cr3t-api-key-0001" not in text
    assert text.count("[redacted]") == 3  # the message, the traceback's source line and error
    assert "a word: short" in text


def test_a_burst_of_one_message_is_cut_and_counted_after_its_window() -> None:
    now = [0.0]
    repeats = RepeatFilter(limit=3, window=10.0, clock=lambda: now[0])

    def record(address: str) -> logging.LogRecord:
        return logging.LogRecord("aiokafka", logging.WARNING, "x", 1, "lost %s", (address,), None)

    passed = [repeats.filter(record(f"10.0.0.{i}")) for i in range(1000)]
    assert passed.count(True) == 3  # one message, whatever its arguments
    other = logging.LogRecord("aiokafka", logging.WARNING, "x", 1, "another", (), None)
    assert repeats.filter(other)
    now[0] = 10.0
    after = record("10.0.0.9")
    assert repeats.filter(after) and getattr(after, "repeats_held_back", None) == 997


def test_a_jobs_info_lines_are_never_cut_however_many_jobs_run() -> None:
    repeats = RepeatFilter(limit=3, window=10.0, clock=lambda: 0.0)
    lines = [logging.LogRecord("exhaust.generator", logging.INFO, "x", 1, "%s COMPLETED",
                               (f"r-{i}",), None) for i in range(1000)]  # fmt: skip
    assert all(repeats.filter(line) for line in lines)
