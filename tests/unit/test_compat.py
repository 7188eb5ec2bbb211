"""The seams over library internals refuse to start when an internal is gone or misbehaves."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from faust import streams
from faust.transport import consumer as faust_consumer

from app.domain.errors import ConfigurationError
from app.stream import aiokafka_compat, faust_compat


def test_the_installed_libraries_pass_their_checks() -> None:
    faust_compat.check_library()
    aiokafka_compat.check_library()


def test_a_faust_without_the_current_event_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(streams, "_current_event")
    with pytest.raises(ConfigurationError, match="_current_event"):
        faust_compat.check_library()


def test_a_faust_whose_commit_no_longer_flushes_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def commit_offsets(self: object, offsets: object, **kwargs: object) -> bool:
        return True  # commits without flushing the producer first

    monkeypatch.setattr(faust_consumer.Consumer, "_commit_offsets", commit_offsets)
    with pytest.raises(ConfigurationError, match="flushes the producer"):
        faust_compat.check_library()


class Event:
    """An event as a table write sees it: its message's partition."""

    def __init__(self, partition: int) -> None:
        self.message = SimpleNamespace(partition=partition)


def test_a_write_is_attributed_to_the_event_it_belongs_to_and_only_inside() -> None:
    event = Event(4)
    assert streams.current_event() is None
    with faust_compat.acting_for(event):
        current: object = streams.current_event()
        assert current is event
    assert streams.current_event() is None


def test_the_fetch_wait_is_set_and_read_back_or_refused() -> None:
    consumer = SimpleNamespace(_fetcher=SimpleNamespace(_fetch_max_wait_ms=1500))
    aiokafka_compat.cap_fetch_wait(consumer, 10)
    assert consumer._fetcher._fetch_max_wait_ms == 10
    with pytest.raises(ConfigurationError, match="fetch wait"):
        aiokafka_compat.cap_fetch_wait(SimpleNamespace(_fetcher=SimpleNamespace()), 10)
