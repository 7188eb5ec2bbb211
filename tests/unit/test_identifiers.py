from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.errors import InvalidIdentifier
from app.domain.identifiers import check, check_client_id, is_valid
from app.domain.model import job_key
from tests.corpus import load


@pytest.mark.parametrize(
    "good",
    ["acme", "batch-42", "7E0C0A1B2C3D4E5F60718293A4B5C6D7", "channel_01:user.x", "a@b", "x" * 128,
     "a.b.c", "0f8fad5b-d9cb-469f-a165-70867728950e"],
)  # fmt: skip
def test_the_pattern_admits_seed_style_identifiers(good: str) -> None:
    assert is_valid(good) and check("tag", good) == good


@pytest.mark.parametrize(
    "bad",
    ["", " ", "a b", "a/b", "../../../../tmp/x", "a..b", "..", ".hidden", "-x", "x" * 129,
     "tab\there", "new\nline", "é", "a\\b", "a?b", "a%2Fb", None, 7],
)  # fmt: skip
def test_the_pattern_rejects_what_could_escape_a_key_prefix(bad: object) -> None:
    assert not is_valid(bad)
    with pytest.raises(InvalidIdentifier, match="channel"):
        check("channel", bad)


@pytest.mark.parametrize("bad", load("identifiers"))
def test_every_hostile_identifier_of_the_corpus_is_refused(bad: object) -> None:
    assert not is_valid(bad)


@pytest.mark.parametrize("reserved", load("client_ids"))
def test_a_client_may_not_choose_an_id_of_a_derived_shape(reserved: str) -> None:
    assert is_valid(reserved)  # a valid identifier, which the service may use itself
    with pytest.raises(InvalidIdentifier, match="derives"):
        check_client_id("request_id", reserved)
    assert check_client_id("request_id", reserved.lower()[:32]) == reserved.lower()[:32]


@given(st.text(max_size=140), st.text(max_size=140))
def test_a_job_key_names_exactly_one_channel_and_id(channel: str, request_id: str) -> None:
    """Two valid (channel, id) pairs never share a job key: ids are per channel."""
    if not (is_valid(channel) and is_valid(request_id)):
        return
    assert "/" not in channel + request_id and ".." not in channel + request_id
    assert job_key(channel, request_id).split("/") == [channel, request_id]
    assert all(c.isascii() and (c.isalnum() or c in "._:@-") for c in channel + request_id)
