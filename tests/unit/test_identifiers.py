from __future__ import annotations

import pytest

from app.domain.errors import InvalidIdentifier
from app.domain.identifiers import check, is_valid


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
