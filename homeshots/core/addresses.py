"""One address normalizer for the properties file and every source, so one address has one form.

'4732 East Camelback Road', '4732 E. CAMELBACK RD' and '4732 e camelback rd' all become
'4732 e camelback rd': lowercase, ``.`` and ``'`` dropped, any other punctuation a word break, and
spelled-out street words, directions and unit words replaced by their USPS abbreviations.
"""

from __future__ import annotations

import re

WORDS = {
    "street": "st", "avenue": "ave", "av": "ave", "road": "rd", "drive": "dr", "boulevard": "blvd",
    "lane": "ln", "court": "ct", "place": "pl", "parkway": "pkwy", "highway": "hwy", "circle": "cir",
    "terrace": "ter", "trail": "trl", "square": "sq", "apartment": "apt", "suite": "ste",
    "north": "n", "south": "s", "east": "e", "west": "w",
    "northeast": "ne", "northwest": "nw", "southeast": "se", "southwest": "sw",
}  # fmt: skip
"""Spelled-out words and their USPS abbreviations."""
UNIT_WORDS = frozenset({"unit", "apt", "ste"})
"""Unit designators (after abbreviation): '#4', 'Unit 4' and 'Apt 4' name the same unit."""

_DROP = str.maketrans("", "", ".'")
_SEPARATORS = re.compile(r"[\W_]+")


def normalize(text: str | None, *, abbreviate: bool = True, drop_units: bool = False) -> str:
    """The comparable form of an address part; ``abbreviate`` off for city names, which keep their words."""
    # Runs three times per row of a file without ids: compiled patterns and translate, not re.sub chains.
    tokens = _SEPARATORS.sub(" ", (text or "").lower().translate(_DROP)).split()
    if abbreviate:
        get = WORDS.get
        tokens = [get(t, t) for t in tokens]
    if drop_units:
        tokens = [t for t in tokens if t not in UNIT_WORDS]
    return " ".join(tokens)


def street_key(text: str | None, *, drop_units: bool = False) -> str:
    """The street address of a one-line address ('4732 E Camelback Rd, Phoenix, AZ' -> '4732 e camelback rd')."""
    return normalize((text or "").split(",", 1)[0], drop_units=drop_units)
