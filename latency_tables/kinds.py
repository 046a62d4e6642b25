"""What a measurement is: a table unit, the per-run overhead, or a whole subnet.

One owner for the work-key vocabulary that agents, the service and the local CLI share: a unit's
key is its canonical ``latency_tables.units`` key, the overhead is the empty model's one key, and a
whole subnet (a front point to verify, a transfer's sample) is ``subnet:<LightTrack string>``.
The service stores the kind in ``work_units.kind``; code branches on :func:`kind_of`, never on
key prefixes.
"""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    UNIT = "unit"  # one table unit: its entry is the table's
    OVERHEAD = "overhead"  # the per-run overhead (empty model): the table's overhead_ms
    SUBNET = "subnet"  # a whole search graph measured end to end: a measurement, not a table entry


OVERHEAD_KEY = "overhead:empty"
SUBNET_PREFIX = "subnet:"


def kind_of(key: str) -> Kind:
    if key == OVERHEAD_KEY:
        return Kind.OVERHEAD
    return Kind.SUBNET if key.startswith(SUBNET_PREFIX) else Kind.UNIT


def subnet_key(lighttrack: str) -> str:
    """The work key of a whole subnet, from its LightTrack string."""
    return SUBNET_PREFIX + lighttrack


def subnet_of(key: str) -> str:
    """The LightTrack string of a subnet work key (ValueError for any other kind)."""
    if kind_of(key) is not Kind.SUBNET:
        raise ValueError(f"{key!r} is not a subnet key")
    return key[len(SUBNET_PREFIX):]
