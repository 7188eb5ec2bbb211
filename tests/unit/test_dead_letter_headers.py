"""Dead-letter headers: where a letter came from, and the replay it came from if any."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from app.domain.errors import MalformedRequest
from app.stream.publisher import dead_letter_headers


@pytest.mark.parametrize(
    "headers",
    [
        [("replayed-from", b"dlq/0/7")],  # aiokafka / Faust as pairs
        {"replayed-from": b"dlq/0/7"},  # Faust as a mapping
        (("other", b"x"), ("replayed-from", b"dlq/0/7")),
    ],
)
def test_a_replayed_message_that_fails_again_points_at_its_first_letter(headers: object) -> None:
    message = SimpleNamespace(topic="t.requests", partition=2, offset=40, headers=headers)
    found = dict(dead_letter_headers(message, MalformedRequest("bad")))
    assert found["replayed-from"] == b"dlq/0/7"
    assert (found["source-topic"], found["source-partition"], found["source-offset"]) == (
        b"t.requests", b"2", b"40"
    )  # fmt: skip


def test_a_first_failure_has_no_replay_marker() -> None:
    cases: list[object] = [None, [], {}, [("replayed-from", "not bytes")]]
    for headers in cases:
        message = SimpleNamespace(topic="t", partition=0, offset=1, headers=headers)
        assert "replayed-from" not in dict(dead_letter_headers(message, MalformedRequest("bad")))
