"""The device's state while a model is timed: other load, throttling, temperature (stdlib only).

A measurement is only worth storing if the device ran it as it runs the network in use: not while
other processes compete for its cores, not while its clock is held down by heat or power. The
agent watches every measurement (:class:`Watch`), records what it saw in the result's env
(``conditions``) and, where :func:`flags` finds a limit broken, measures the unit again after a
pause instead of uploading it (``profilers.agent``).

Other load is what the whole machine's CPU time (``/proc/stat``) grew by beyond this process's
own (``time.process_time``, every thread of it), over the wall time of the measurement, in cores;
hypervisor steal (the host giving this VM's CPUs to others) is counted apart. Facts a system does
not expose are left out, never guessed.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from profilers.env import frequency


def _cpu_jiffies() -> tuple[int, int] | None:
    """``(busy, steal)`` jiffies of all CPUs since boot, or None without ``/proc/stat``."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    if not first or first[0] != "cpu" or len(first) < 8:
        return None
    v = [int(x) for x in first[1:]]
    # user nice system idle iowait irq softirq steal ...: busy excludes idle, iowait and steal
    busy = v[0] + v[1] + v[2] + v[5] + v[6]
    return busy, v[7] if len(v) > 7 else 0


def temperature_c() -> float | None:
    """The hottest thermal zone's temperature, where ``/sys/class/thermal`` has any."""
    temps = []
    for zone in Path("/sys/class/thermal").glob("thermal_zone*/temp"):
        try:
            temps.append(int(zone.read_text().strip()) / 1000.0)
        except (OSError, ValueError):
            continue
    return max(temps) if temps else None


class Watch:
    """``with Watch() as w: ...`` then ``w.conditions``: other load and steal (cores), the clock
    (MHz, with its maximum), the temperature and the CPU affinity during the block."""

    def __enter__(self) -> Watch:
        self._t0, self._cpu0, self._j0 = time.perf_counter(), time.process_time(), _cpu_jiffies()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = max(time.perf_counter() - self._t0, 1e-9)
        own = time.process_time() - self._cpu0
        j1 = _cpu_jiffies()
        out: dict[str, Any] = {"wall_s": round(wall, 4)}
        if self._j0 is not None and j1 is not None:
            hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
            busy = (j1[0] - self._j0[0]) / hz
            # jiffies tick at 1/hz: below a few ticks of wall time the figure is too coarse to judge
            if wall * hz >= 5:
                out["other_load_cores"] = round(max(busy - own, 0.0) / wall, 3)
                out["steal_cores"] = round((j1[1] - self._j0[1]) / hz / wall, 3)
        out.update(frequency())
        temp = temperature_c()
        if temp is not None:
            out["temp_c"] = temp
        try:
            out["affinity"] = sorted(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            pass
        self.conditions = out


@dataclass(frozen=True)
class Limits:
    """When a measurement is not stored. ``None`` turns a check off."""

    max_other_cores: float | None = 0.5  # other processes (and steal) using half a core or more
    # clock under this share of its maximum (heat or power holding it down); off by default: cpu0's
    # clock is what /sys shows, and an idle cpu0 under an on-demand governor would read as throttled
    min_clock_ratio: float | None = None
    max_temp_c: float | None = None  # a device's own throttling point, where known


def flags(conditions: dict[str, Any], limits: Limits) -> list[str]:
    """What made a measurement untrustworthy, in words; empty when it ran undisturbed (or
    nothing could be checked)."""
    out = []
    other = float(conditions.get("other_load_cores", 0.0)) + float(conditions.get("steal_cores", 0.0))
    if limits.max_other_cores is not None and other >= limits.max_other_cores:
        out.append(f"loaded: other processes used {other:.2f} cores (limit {limits.max_other_cores:g})")
    cur, top = conditions.get("freq_mhz"), conditions.get("max_freq_mhz")
    if limits.min_clock_ratio is not None and cur and top and cur / top < limits.min_clock_ratio:
        out.append(f"throttled: clock {cur:.0f} of {top:.0f} MHz")
    temp = conditions.get("temp_c")
    if limits.max_temp_c is not None and temp is not None and temp >= limits.max_temp_c:
        out.append(f"hot: {temp:.0f} C (limit {limits.max_temp_c:g})")
    return out


NUMERIC_KEYS = ("other_load_cores", "steal_cores", "freq_mhz", "max_freq_mhz", "temp_c", "wall_s")


def valid_conditions(value: Any) -> dict[str, float] | None:
    """The numeric facts of an uploaded ``conditions`` record (finite, non-negative, known keys
    only), or None: entries uploaded by agents are data, shown back only once checked."""
    if not isinstance(value, dict):
        return None
    out = {}
    for k in NUMERIC_KEYS:
        v = value.get(k)
        if isinstance(v, int | float) and not isinstance(v, bool) and 0 <= v < 1e7:
            out[k] = float(v)
    return out or None
