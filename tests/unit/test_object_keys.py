"""Object keys from outside: the hostile corpus is refused, and what is accepted is canonical
(property tests: no layer that normalises paths or decodes percent-escapes reads it otherwise)."""

from __future__ import annotations

import posixpath
import unicodedata
from urllib.parse import quote, unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain import object_keys
from app.domain.errors import InvalidObjectKey, TooManyInputs
from tests.corpus import load

PREFIX = object_keys.input_prefix("acme")


@pytest.mark.parametrize("key", load("object_keys"))
def test_every_hostile_key_of_the_corpus_is_refused(key: object) -> None:
    with pytest.raises(InvalidObjectKey):
        object_keys.check_under("inputs[0]", key, PREFIX)


@pytest.mark.parametrize(
    "key", ["acme/inputs/x.ndjson", "acme/inputs/0f8fad5b-d9cb/0.ndjson", "acme/inputs/a_b.c-d"]
)
def test_canonical_keys_under_the_prefix_are_accepted(key: str) -> None:
    assert object_keys.check_under("inputs[0]", key, PREFIX) == key


def test_inputs_are_deduplicated_in_order_and_capped() -> None:
    keys = ["acme/inputs/b", "acme/inputs/a", "acme/inputs/b"]
    assert object_keys.check_inputs("acme", keys, 2) == ["acme/inputs/b", "acme/inputs/a"]
    with pytest.raises(TooManyInputs):
        object_keys.check_inputs("acme", [f"acme/inputs/{n}" for n in range(3)], 2)


# Everything a client could type, weighted towards the characters that matter to paths.
KEYISH = st.text(
    alphabet=st.sampled_from([*"acme/inputs.\\%2eEfF0_-:@ \x00\n", "\u2024", "\uff0e", "é"])
    | st.characters(),
    max_size=80,
)


@given(KEYISH)
def test_an_accepted_key_reads_the_same_to_every_layer(key: str) -> None:
    if not object_keys.is_canonical(key):
        return
    assert posixpath.normpath(key) == key  # no '.', '..', '//' or trailing '/' to collapse
    assert unquote(key) == key and quote(key, safe="/") == key  # no escape to decode or add
    assert unicodedata.normalize("NFKC", key) == key and key.isascii()
    assert "\\" not in key and not key.startswith("/")


@given(KEYISH)
def test_a_key_accepted_under_a_prefix_stays_under_it_after_normalisation(tail: str) -> None:
    key = PREFIX + tail
    try:
        object_keys.check_under("inputs[0]", key, PREFIX)
    except InvalidObjectKey:
        return
    assert posixpath.normpath(key).startswith(PREFIX)
    assert posixpath.normpath(unquote(key)).startswith(PREFIX)
