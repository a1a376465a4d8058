"""Property's compact JSON form (task arguments): the fast path keeps ``asdict``'s behaviour."""

from __future__ import annotations

import dataclasses

import pytest

from homeshots.core.models import Property


@pytest.mark.parametrize(
    "prop",
    [
        Property(property_id="p-1", address="1 Main St"),
        Property(
            property_id="p-2",
            address="2 Oak Ave",
            city="Phoenix",
            state="AZ",
            zip="85001",
            apn="123-45-678",
            mls_listing_key="K1",
            zpid="7",
            redfin_url="https://www.redfin.com/AZ/x/home/1",
        ),
    ],
)
def test_fast_to_dict_equals_asdict_without_nones(prop: Property) -> None:
    expected = {k: v for k, v in dataclasses.asdict(prop).items() if v is not None}
    assert prop.to_dict() == expected and list(prop.to_dict()) == list(expected)
    assert Property.from_dict(prop.to_dict()) == prop
