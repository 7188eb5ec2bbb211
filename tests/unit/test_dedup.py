from __future__ import annotations

import dataclasses

import pytest

from app.domain.dedup import derive_request_id, fingerprint, request_id_for
from app.domain.errors import InvalidIdentifier
from app.domain.model import DatasetRequest

DAY_MS = 86_400_000
BASE = DatasetRequest(
    tag="t1", dataset="demo-export", channel="acme", requested_by="u1",
    submitted_at=10 * DAY_MS + 1000, config='{"rows": 5, "seed": 1}',
)  # fmt: skip


def test_same_request_in_the_same_window_is_the_same_job() -> None:
    later = dataclasses.replace(BASE, submitted_at=BASE.submitted_at + 3_600_000)
    reordered = dataclasses.replace(later, config='{"seed": 1,  "rows": 5}')
    assert derive_request_id(BASE, 86400) == derive_request_id(reordered, 86400)


def test_next_window_or_other_parameters_give_another_job() -> None:
    ids = {
        derive_request_id(BASE, 86400),
        derive_request_id(
            dataclasses.replace(BASE, submitted_at=BASE.submitted_at + DAY_MS), 86400
        ),
        derive_request_id(dataclasses.replace(BASE, channel="other"), 86400),
        derive_request_id(dataclasses.replace(BASE, config='{"rows": 6, "seed": 1}'), 86400),
        derive_request_id(dataclasses.replace(BASE, requested_by="u2"), 86400),
    }
    assert len(ids) == 5


def test_window_is_configurable() -> None:
    an_hour_later = dataclasses.replace(BASE, submitted_at=BASE.submitted_at + 3_600_000)
    assert derive_request_id(BASE, 60) != derive_request_id(an_hour_later, 60)


def test_client_id_wins_and_is_validated() -> None:
    assert request_id_for(dataclasses.replace(BASE, request_id="abc-123"), 86400) == (
        "abc-123",
        True,
    )
    for bad in ("", "   ", "a/b", "x" * 129, "../../tmp/x", "a b", "a..b", "-x", "é"):
        with pytest.raises(InvalidIdentifier):
            request_id_for(dataclasses.replace(BASE, request_id=bad), 86400)


def test_fingerprint_ignores_window_and_client_id_but_not_parameters() -> None:
    moved = dataclasses.replace(BASE, submitted_at=BASE.submitted_at + 5 * DAY_MS, request_id="x")
    assert fingerprint(moved) == fingerprint(BASE)
    assert fingerprint(dataclasses.replace(BASE, tag="t2")) != fingerprint(BASE)


def test_the_encryption_key_itself_is_not_a_hash_input() -> None:
    a = dataclasses.replace(BASE, encryption_key="secret-a")
    b = dataclasses.replace(BASE, encryption_key="secret-b")
    assert fingerprint(a) == fingerprint(b) != fingerprint(BASE)
    assert "secret" not in repr(a)
