"""Environment metadata recorded with every measurement (stdlib only).

CPU model, core counts, frequency governor and current frequency where /proc and /sys expose
them; absent facts are left out rather than guessed.
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path
from typing import Any


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


@functools.cache
def _cpu_model() -> str:
    text = _read("/proc/cpuinfo") or ""
    for line in text.splitlines():
        if line.lower().startswith(("model name", "hardware", "processor\t: arm")):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def frequency() -> dict[str, Any]:
    base = "/sys/devices/system/cpu/cpu0/cpufreq/"
    out: dict[str, Any] = {}
    governor = _read(base + "scaling_governor")
    if governor:
        out["governor"] = governor
    for name, key in (("scaling_cur_freq", "freq_mhz"), ("scaling_max_freq", "max_freq_mhz")):
        value = _read(base + name)
        if value and value.isdigit():
            out[key] = int(value) / 1000.0
    if "freq_mhz" not in out:  # fall back to /proc/cpuinfo's "cpu MHz"
        for line in (_read("/proc/cpuinfo") or "").splitlines():
            if line.lower().startswith("cpu mhz"):
                try:
                    out["freq_mhz"] = float(line.split(":", 1)[1])
                except ValueError:
                    pass
                break
    return out


def _size_bytes(text: str) -> int | None:
    text = text.strip().upper()
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    digits = text.rstrip("KMGB")
    return int(digits) * scale if digits.isdigit() else None


@functools.cache
def cache_sizes() -> dict[str, int]:
    """Per-level cache sizes of CPU 0 in bytes (``{"L1d": ..., "L2": ..., "L3": ...}``), where
    /sys exposes them."""
    out: dict[str, int] = {}
    base = Path("/sys/devices/system/cpu/cpu0/cache")
    for idx in sorted(base.glob("index*")) if base.exists() else []:
        level, kind, size = (_read(str(idx / f)) for f in ("level", "type", "size"))
        if not level or not size or kind == "Instruction":
            continue
        value = _size_bytes(size)
        if value:
            out[f"L{level}{'d' if kind == 'Data' else ''}"] = value
    return out


def environment(runtime: dict[str, Any] | None = None) -> dict[str, Any]:
    """This machine's facts, merged with a backend's ``runtime_info()``."""
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 1
    env: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count() or 1,
        "usable_cores": usable,
        "machine": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "hostname": platform.node(),
    }
    env.update(frequency())
    env.update({f"cache_{k}_kib": v // 1024 for k, v in cache_sizes().items()})
    load = _read("/proc/loadavg")
    if load:
        env["loadavg_1m"] = float(load.split()[0])
    if runtime:
        env.update(runtime)
    return env
