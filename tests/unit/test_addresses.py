"""The one address normalizer: inputs, the assessor and Redfin compare addresses alike."""

from __future__ import annotations

import re

import pytest

from homeshots.core.addresses import WORDS, normalize, street_key


def _normalize_reference(text: str | None, *, words: bool = True) -> str:
    """The earlier implementation (re.sub per call), kept here as the specification."""
    text = re.sub(r"[.']", "", (text or "").lower())
    tokens = re.sub(r"[\W_]+", " ", text).split()
    return " ".join(WORDS.get(t, t) if words else t for t in tokens)


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "4732 E. Camelback Road",
        "O'Neil  Avenue, Apartment #3",
        "North_Street\tSuite 5",
        "İstanbul Straße NE",
        "a\u2028b\u3000c\x1cd",
        "...'''",
        "Lane/Court-Place",
    ],
)
def test_normalize_matches_the_reference(text: str | None) -> None:
    for words in (True, False):
        assert normalize(text, abbreviate=words) == _normalize_reference(text, words=words)


@pytest.mark.parametrize(
    "a, b",
    [
        ("4732 East Camelback Road", "4732 E. CAMELBACK RD"),
        ("101 Northeast Main Street", "101 NE Main St"),
        ("12 W Palm Ln, Phoenix, AZ 85007", "12 West Palm Lane"),
    ],
)
def test_one_address_has_one_form(a: str, b: str) -> None:
    assert street_key(a) == street_key(b)


def test_units_can_be_ignored_when_comparing() -> None:
    assert street_key("5 Oak Ave Unit 4", drop_units=True) == street_key("5 Oak Avenue Apartment 4", drop_units=True)
    assert street_key("5 Oak Ave Unit 4") != street_key("5 Oak Ave 4")
