"""A space name stored with a target or a search means one space; an unknown one is an error."""

from __future__ import annotations

import pytest

from server.measurements.workunits import space_of
from tracking.space import SearchSpace


def test_a_stored_space_name_must_be_known() -> None:
    assert space_of("code") == SearchSpace.code() and space_of("paper") == SearchSpace.paper()
    with pytest.raises(ValueError, match="space must be one of"):
        space_of("papr")  # was silently the paper space
