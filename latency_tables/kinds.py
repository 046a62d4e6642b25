"""What a measurement is: a table unit, the per-run overhead, or a whole subnet.

One owner for the work-key vocabulary that agents, the service and the local CLI share: a unit's
key is its canonical ``latency_tables.units`` key, the overhead is the empty model's one key, and a
whole subnet (a front point to verify, a transfer's sample) is ``subnet:<LightTrack string>``, and
an anchor subnet the service re-measures on a schedule to follow the host's speed (drift probes,
``server.measurements.drift``) is ``anchor:<LightTrack string>``.
The service stores the kind in ``work_units.kind``; code branches on :func:`kind_of`, never on
key prefixes.
"""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    UNIT = "unit"  # one table unit: its entry is the table's
    OVERHEAD = "overhead"  # the per-run overhead (empty model): the table's overhead_ms
    SUBNET = "subnet"  # a whole search graph measured end to end: a measurement, not a table entry
    ANCHOR = "anchor"  # a whole search graph re-measured every probe round: the gauge of drift

    @property
    def is_table(self) -> bool:
        """Whether results of this kind are the table's own (its entries and overhead)."""
        return self in (Kind.UNIT, Kind.OVERHEAD)

    @property
    def is_graph(self) -> bool:
        """Whether the work is a whole search graph (exported from its LightTrack string)."""
        return self in (Kind.SUBNET, Kind.ANCHOR)


OVERHEAD_KEY = "overhead:empty"
SUBNET_PREFIX = "subnet:"
ANCHOR_PREFIX = "anchor:"
_PREFIXES = {Kind.SUBNET: SUBNET_PREFIX, Kind.ANCHOR: ANCHOR_PREFIX}


def kind_of(key: str) -> Kind:
    if key == OVERHEAD_KEY:
        return Kind.OVERHEAD
    return next((k for k, p in _PREFIXES.items() if key.startswith(p)), Kind.UNIT)


def subnet_key(lighttrack: str) -> str:
    """The work key of a whole subnet, from its LightTrack string."""
    return SUBNET_PREFIX + lighttrack


def anchor_key(lighttrack: str) -> str:
    """The work key of an anchor subnet, from its LightTrack string."""
    return ANCHOR_PREFIX + lighttrack


def subnet_of(key: str) -> str:
    """The LightTrack string of a whole-graph work key, subnet or anchor (ValueError for a unit)."""
    kind = kind_of(key)
    if not kind.is_graph:
        raise ValueError(f"{key!r} is not a subnet key")
    return key[len(_PREFIXES[kind]):]
