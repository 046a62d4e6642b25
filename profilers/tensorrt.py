"""The TensorRT backend: the units' ONNX built into engines and timed by NVIDIA's ``trtexec``.

What a Jetson (or any NVIDIA GPU) runs in deployment. Each unit is built once per precision
(``fp32``; ``fp16``; ``int8``, with fp16 fallback as trtexec's own ``--best`` does) into an engine
kept in a persistent :class:`EngineCache`, keyed by the ONNX bytes, the precision, the TensorRT
version and the device, so an engine is never reused on another device or TensorRT. trtexec
times it with CUDA graphs, no host-device copies and spin-waiting (``BENCH_FLAGS``); a run's time
is its GPU compute time: per run from ``--exportTimes`` JSON, else the summary's median.

No TensorRT Python package is imported: trtexec is a program (JetPack ships it at
``JETSON_TRTEXEC``), run as a command like :class:`~profilers.backends.CommandBackend`'s. On
Jetsons the power mode (``nvpmodel -q``) and GPU clocks (devfreq) are recorded with every
measurement (:func:`jetson_conditions`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from profilers.backends import Backend, CommandBackend, CommandError, register_backend

TRT_PRECISIONS = ("fp32", "fp16", "int8")
PRECISION_FLAGS = {"fp32": (), "fp16": ("--fp16",), "int8": ("--int8", "--fp16")}
# CUDA graphs: one launch per inference, as a deployed tracker runs it; no H2D/D2H copies: units are
# timed as parts of a network whose activations stay on the GPU; spin-wait: no sleep/wake jitter;
# separate profile run: with --dumpProfile in extra, trtexec would otherwise print no summary.
BENCH_FLAGS = ("--useCudaGraph", "--noDataTransfers", "--useSpinWait", "--separateProfileRun")
JETSON_TRTEXEC = "/usr/src/tensorrt/bin/trtexec"
DEFAULT_WARMUP_MS = 200  # trtexec's own default

_NUM = r"([0-9.]+(?:[eE][+-]?[0-9]+)?)"
_PREFIX = r"^(?:\[[^\]\n]*\]\s*)*"  # trtexec's "[date] [I] " (and wrappers' own) line prefixes
_ONE_LINE = re.compile(_PREFIX + r"(Latency|Enqueue Time|H2D Latency|GPU Compute Time|D2H Latency): (min = .*)$",
                       re.MULTILINE)
_STAT = re.compile(r"(min|max|mean|median) = " + _NUM + " ms")
_PCT = re.compile(r"percentile\(" + _NUM + r"%\) = " + _NUM + " ms")
_SCALARS = {"throughput_qps": r"Throughput: " + _NUM + " qps", "total_host_walltime_s": r"Total Host Walltime: "
            + _NUM + " s", "total_gpu_compute_s": r"Total GPU Compute Time: " + _NUM + " s"}
# TensorRT 7.x printed blocks: a header line, then "min: X ms", ..., "percentile: X ms at 99%"
_OLD_BLOCKS = {"Host Latency": "latency", "Enqueue Time": "enqueue", "GPU Compute": "gpu_compute"}
_OLD_STAT = re.compile(r"^(min|max|mean|median): " + _NUM + " ms")
_OLD_PCT = re.compile(r"^percentile: " + _NUM + " ms at " + _NUM + "%")
_OLD_SCALARS = {"throughput_qps": re.compile(r"^throughput: " + _NUM + " qps"),
                "total_host_walltime_s": re.compile(r"^walltime: " + _NUM + " s"),
                "total_gpu_compute_s": re.compile(r"^total compute time: " + _NUM + " s")}


@dataclass(frozen=True)
class TimeStats:
    """One line of trtexec's summary, in ms; ``percentiles``: {99.0: ms, ...}."""

    min: float | None = None
    max: float | None = None
    mean: float | None = None
    median: float | None = None
    percentiles: dict[float, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TrtexecReport:
    """What trtexec printed about one run: its performance summary and which TensorRT and device."""

    gpu_compute: TimeStats
    latency: TimeStats | None = None
    enqueue: TimeStats | None = None
    h2d: TimeStats | None = None
    d2h: TimeStats | None = None
    throughput_qps: float | None = None
    total_host_walltime_s: float | None = None
    total_gpu_compute_s: float | None = None
    trt_version: str | None = None
    device: str | None = None


def _version_from_tag(tag: str) -> str:
    """``8502`` -> 8.5.2, ``100300`` -> 10.3.0 (the ``[TensorRT vNNNN]`` banner's encoding)."""
    major, rest = (tag[:1], tag[1:]) if len(tag) == 4 else (tag[:2], tag[2:])
    minor, patch = (rest[:1], rest[1:]) if len(tag) == 4 else (rest[:2], rest[2:])
    return f"{int(major)}.{int(minor)}.{int(patch)}"


def trtexec_identity(text: str) -> tuple[str | None, str | None]:
    """``(TensorRT version, device name)`` as trtexec printed them, None where it did not."""
    m = re.search(r"TensorRT version: (\d+(?:\.\d+)+)", text)
    version = m.group(1) if m else None
    if version is None and (m := re.search(r"\[TensorRT v(\d{4,6})\]", text)):
        version = _version_from_tag(m.group(1))
    m = re.search(r"Selected Device: (.+?)\s*$", text, re.MULTILINE)
    return version, (m.group(1) if m else None)


def _one_line_stats(body: str) -> TimeStats:
    values = {k: float(v) for k, v in _STAT.findall(body)}
    return TimeStats(**values, percentiles={float(p): float(v) for p, v in _PCT.findall(body)})


def _old_blocks(text: str) -> tuple[dict[str, TimeStats], dict[str, float]]:
    """TensorRT 7.x's block-format summary: stats per block and its scalars."""
    blocks: dict[str, dict[str, Any]] = {}
    scalars: dict[str, float] = {}
    current = None
    for raw in text.splitlines():
        line = re.sub(_PREFIX, "", raw).strip()
        if line in _OLD_BLOCKS:
            current = blocks.setdefault(_OLD_BLOCKS[line], {"percentiles": {}})
            continue
        for key, rx in _OLD_SCALARS.items():
            if m := rx.match(line):
                scalars[key] = float(m.group(1))
        if current is not None and (m := _OLD_STAT.match(line)):
            current[m.group(1)] = float(m.group(2))
        elif current is not None and (m := _OLD_PCT.match(line)):
            current["percentiles"][float(m.group(2))] = float(m.group(1))
        else:
            current = None
    return {k: TimeStats(**v) for k, v in blocks.items()}, scalars


def _failure(text: str) -> ValueError:
    errors = [ln.strip() for ln in text.splitlines() if "[E]" in ln or "&&&& FAILED" in ln]
    why = f"; last error: {errors[-1][:300]}" if errors else ""
    if not errors and "add --separateProfileRun" in text:
        why = "; it was profiling layers (--dumpProfile) without --separateProfileRun"
    if not why:
        tail = [ln.strip() for ln in text.splitlines() if ln.strip()][-1:]
        why = f"; its output ends: {tail[0][:200]}" if tail else "; it printed nothing"
    return ValueError(f"no performance summary (GPU Compute Time) in trtexec's output{why}")


def parse_trtexec(text: str) -> TrtexecReport:
    """trtexec's performance summary (TensorRT 8.0+ one-line format, ``percentile(99%) = X ms``, or
    7.x's blocks, ``percentile: X ms at 99%``). ValueError when it printed none (a failed build: the
    message quotes the last ``[E]`` line)."""
    names = {"Latency": "latency", "Enqueue Time": "enqueue", "H2D Latency": "h2d", "GPU Compute Time": "gpu_compute",
             "D2H Latency": "d2h"}
    stats: dict[str, TimeStats] = {names[n]: _one_line_stats(b) for n, b in _ONE_LINE.findall(text)}
    scalars = {k: float(m.group(1)) for k, rx in _SCALARS.items() if (m := re.search(rx, text))}
    if "gpu_compute" not in stats:
        old_stats, old_scalars = _old_blocks(text)
        stats, scalars = {**old_stats, **stats}, {**old_scalars, **scalars}
    if "gpu_compute" not in stats or stats["gpu_compute"].median is None:
        raise _failure(text)
    version, device = trtexec_identity(text)
    return TrtexecReport(**stats, **scalars, trt_version=version, device=device)


def parse_export_times(text: str) -> list[float]:
    """GPU compute time (ms) of each timed inference in ``--exportTimes`` JSON (warm-up excluded:
    trtexec leaves it out)."""
    try:
        records = json.loads(text)
        return [float(r["computeMs"]) for r in records]
    except (ValueError, TypeError, KeyError) as e:
        raise ValueError(f"not trtexec --exportTimes JSON ({type(e).__name__}: {e})") from None


def trtexec_command(onnx: str | Path, *, precision: str = "fp32", engine: Path | None = None, load: bool = False,
                    runs: int = 50, warmup_ms: int = DEFAULT_WARMUP_MS, extra: Sequence[str] = (),
                    trtexec: str = "trtexec", export_times: Path | None = None) -> list[str]:
    """trtexec's argv: build ``onnx`` at ``precision`` (saving the engine to ``engine``), or with
    ``load`` run the cached ``engine`` instead; then time exactly ``runs`` inferences after
    ``warmup_ms`` of warm-up (``--duration=0``: no minimum time on top)."""
    if precision not in TRT_PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(TRT_PRECISIONS)}, got {precision!r}")
    if int(runs) < 1 or int(warmup_ms) < 0:
        raise ValueError("need runs >= 1 and warmup_ms >= 0")
    if load and engine is None:
        raise ValueError("load needs the engine to load")
    if load:  # the engine holds its precision; trtexec takes no model with --loadEngine
        argv = [trtexec, f"--loadEngine={engine}"]
    else:
        argv = [trtexec, f"--onnx={onnx}", *PRECISION_FLAGS[precision]]
        if engine is not None:
            argv.append(f"--saveEngine={engine}")
    argv += [*BENCH_FLAGS, f"--iterations={int(runs)}", "--duration=0", f"--warmUp={int(warmup_ms)}"]
    if export_times is not None:
        argv.append(f"--exportTimes={export_times}")
    return argv + list(extra)


class EngineCache:
    """Built engines in ``directory``, one ``<key>.plan`` each; written atomically (a staging file
    renamed into place), least recently used ones dropped beyond ``max_bytes`` (None: no cap)."""

    def __init__(self, directory: str | Path, max_bytes: int | None = None) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes

    @staticmethod
    def key(onnx: bytes, precision: str, trt_version: str, device: str) -> str:
        h = hashlib.sha256()
        for part in (onnx, precision.encode(), trt_version.encode(), device.encode()):
            h.update(len(part).to_bytes(8, "little") + part)  # length-prefixed: fields cannot run together
        return h.hexdigest()

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.plan"

    def get(self, key: str) -> Path | None:
        """The engine of ``key``, or None (a miss); a hit counts as a use for the size cap."""
        path = self.path(key)
        if not path.is_file():
            return None
        os.utime(path)
        return path

    def staging(self) -> Path:
        """A fresh path in the cache's directory for a build to write to (then :meth:`put`)."""
        return self.directory / f".{uuid.uuid4().hex}.plan.tmp"

    def put(self, key: str, staged: Path) -> Path:
        path = self.path(key)
        os.replace(staged, path)  # atomic on one filesystem: readers never see half an engine
        self._trim(keep=path)
        return path

    def entries(self) -> list[Path]:
        return sorted(self.directory.glob("*.plan"))

    def _trim(self, keep: Path) -> None:
        if self.max_bytes is None:
            return
        plans = sorted(self.entries(), key=lambda p: p.stat().st_mtime)
        total = sum(p.stat().st_size for p in plans)
        for p in plans:
            if total <= self.max_bytes:
                break
            if p != keep:
                total -= p.stat().st_size
                p.unlink(missing_ok=True)

    def clear(self) -> int:
        """Remove every engine and staging file; how many files went."""
        files = [*self.entries(), *self.directory.glob(".*.plan.tmp")]
        for p in files:
            p.unlink(missing_ok=True)
        return len(files)


def resolve_trtexec(path: str | None = None) -> str:
    """The trtexec to run: ``path``, else ``trtexec`` on PATH, else JetPack's; CommandError if none."""
    for candidate in ([path] if path else ["trtexec", JETSON_TRTEXEC]):
        found = shutil.which(candidate)
        if found:
            return found
    where = repr(path) if path else f"'trtexec' on PATH or {JETSON_TRTEXEC}"
    raise CommandError(f"trtexec not found ({where}); install TensorRT (JetPack ships it) or pass its path "
                       "(trtexec_path, the agent's --trtexec)")


# -- Jetson power mode and clocks ------------------------------------------------------------

GPU_DEVFREQ_GLOBS = ("sys/devices/gpu.0/devfreq/*", "sys/devices/platform/*gpu*/devfreq/*",
                     "sys/devices/platform/bus@0/*gpu*/devfreq/*", "sys/devices/*.gv11b/devfreq/*",
                     "sys/devices/platform/*.ga10b/devfreq/*")


def parse_nvpmodel(text: str) -> tuple[str | None, int | None]:
    """``(mode name, mode id)`` from ``nvpmodel -q``: ``NV Power Mode: MAXN`` then the id on its own
    line (errors it prints after, e.g. without root, are ignored)."""
    lines = [ln.strip() for ln in text.splitlines()]
    for i, line in enumerate(lines):
        m = re.match(r"NV Power Mode:\s*(\S+)", line)
        if m:
            ids = [ln for ln in lines[i + 1:i + 3] if ln.isdigit()]
            return m.group(1), (int(ids[0]) if ids else None)
    return None, None


def _gpu_freqs(root: Path) -> dict[str, float | None]:
    out: dict[str, float | None] = {"gpu_freq_mhz": None, "gpu_min_freq_mhz": None, "gpu_max_freq_mhz": None}
    for pattern in GPU_DEVFREQ_GLOBS:
        for node in sorted(root.glob(pattern)):
            try:
                values = {f: int((node / f).read_text().strip()) for f in ("cur_freq", "min_freq", "max_freq")
                          if (node / f).is_file()}
            except (OSError, ValueError):
                continue
            if "cur_freq" in values:  # devfreq reports Hz
                for f, key in (("cur_freq", "gpu_freq_mhz"), ("min_freq", "gpu_min_freq_mhz"),
                               ("max_freq", "gpu_max_freq_mhz")):
                    out[key] = values[f] / 1e6 if f in values else None
                return out
    return out


def jetson_conditions(nvpmodel: str = "nvpmodel", root: str | Path = "/", timeout_s: float = 10.0) -> dict[str, Any]:
    """The Jetson's power mode (``nvpmodel -q``) and GPU clock (devfreq, MHz); None where this
    machine has no such thing (not a Jetson, or nvpmodel missing)."""
    import subprocess  # nvpmodel, a fixed argument list, no shell  # nosec B404

    mode: tuple[str | None, int | None] = (None, None)
    exe = shutil.which(nvpmodel)
    if exe:
        try:
            done = subprocess.run([exe, "-q"], capture_output=True, text=True, timeout=timeout_s, check=False)  # nosec B603
            mode = parse_nvpmodel(done.stdout)
        except (OSError, subprocess.TimeoutExpired):
            pass  # the mode stays unknown (None): recorded as absent, never guessed
    return {"power_mode": mode[0], "power_mode_id": mode[1], **_gpu_freqs(Path(root))}


# -- the backend -------------------------------------------------------------------------------

def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lutnas" / "trt-engines"


@register_backend("tensorrt")
class TensorRTBackend(CommandBackend):
    """Units timed by trtexec (see the module's doc). ``runs``: timed inferences per measurement;
    ``warmup_ms``: trtexec's warm-up; ``extra``: more trtexec flags (e.g. ``--useDLACore=0``);
    ``provider``: what the target's runtime calls this device (default ``tensorrt``)."""

    def __init__(self, precision: str = "fp32", cache_dir: str | Path | None = None, trtexec_path: str | None = None,
                 runs: int = 100, warmup_ms: int = DEFAULT_WARMUP_MS, provider: str | None = None, threads: int = 1,
                 graph_optimization: str = "all", timeout_s: float = 1800.0, extra: Sequence[str] = (),
                 export_times: bool = True, cache_max_bytes: int | None = None, nvpmodel: str = "nvpmodel",
                 sys_root: str | Path = "/") -> None:
        if precision not in TRT_PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(TRT_PRECISIONS)}, got {precision!r}")
        if graph_optimization != "all":  # the builder always optimises; it has no levels to choose
            raise ValueError(f"TensorRT has no graph optimisation levels: graph_optimization must be 'all', "
                             f"got {graph_optimization!r}")
        if int(warmup_ms) < 0:
            raise ValueError(f"warmup_ms must be >= 0, got {warmup_ms}")
        self.trtexec = resolve_trtexec(trtexec_path)  # a missing TensorRT fails here, not at the first unit
        super().__init__(command=shlex.join([self.trtexec, "--onnx={model}"]), runs=runs, warmup=0, threads=threads,
                         provider=provider or "tensorrt", graph_optimization="all", timeout_s=timeout_s)
        self.precision = precision  # after the command backend's own check, which knows no fp16
        self.warmup_ms, self.extra, self.export_times = int(warmup_ms), tuple(extra), export_times
        self.cache = EngineCache(cache_dir or default_cache_dir(), cache_max_bytes)
        self.nvpmodel, self.sys_root = nvpmodel, sys_root
        self.trt_version: str | None = None  # learnt from trtexec's first output
        self.device: str | None = None

    def engine_key(self, onnx: bytes) -> str | None:
        """The cache key of ``onnx`` here; None until trtexec has said which TensorRT and device."""
        if self.trt_version is None or self.device is None:
            return None
        return EngineCache.key(onnx, self.precision, self.trt_version, self.device)

    def invoke(self, model: Path, runs: int, warmup: int) -> np.ndarray:
        """Build (or load from the cache) and time ``model``: ``runs`` GPU compute times in ns."""
        onnx = Path(model).read_bytes()
        key = self.engine_key(onnx)
        hit = self.cache.get(key) if key else None
        staged = None if hit else self.cache.staging()
        with tempfile.TemporaryDirectory(prefix="lutnas-trt-") as tmp:
            times_path = Path(tmp) / "times.json" if self.export_times else None
            argv = trtexec_command(model, precision=self.precision, engine=hit or staged, load=hit is not None,
                                   runs=runs, warmup_ms=self.warmup_ms, extra=self.extra, trtexec=self.trtexec,
                                   export_times=times_path)
            try:
                report = self._run(argv)
                if staged is not None and staged.is_file() and self.engine_key(onnx):
                    self.cache.put(self.engine_key(onnx) or "", staged)
            finally:
                if staged is not None:
                    staged.unlink(missing_ok=True)  # a failed build, or no identity to key it by
            per_run = self._export_times(times_path)
        ms = per_run if per_run else [report.gpu_compute.median or 0.0]
        return np.asarray(ms, dtype=np.float64) * 1e6

    def _run(self, argv: list[str]) -> TrtexecReport:
        out = self.run_command(argv)
        try:
            report = parse_trtexec(out)
        except ValueError as e:
            raise CommandError(str(e)) from None
        if report.trt_version and report.device:
            if self.trt_version is not None and (report.trt_version, report.device) != (self.trt_version, self.device):
                raise CommandError(f"trtexec reports TensorRT {report.trt_version} on {report.device!r}, but this "
                                   f"backend started on TensorRT {self.trt_version} on {self.device!r}")
            self.trt_version, self.device = report.trt_version, report.device
        return report

    @staticmethod
    def _export_times(path: Path | None) -> list[float] | None:
        if path is None or not path.is_file():
            return None
        try:
            return parse_export_times(path.read_text()) or None
        except (OSError, ValueError):
            return None  # the summary's median still stands

    def runtime_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"backend": self.name, "runtime": "tensorrt", "runtime_version": self.trt_version
                                or "unknown", "provider": self.provider, "threads": self.threads,
                                "graph_optimization": "all", "precision": self.precision,
                                "trtexec_flags": list(BENCH_FLAGS) + list(self.extra), "warmup_ms": self.warmup_ms}
        if self.device:
            info["device"] = self.device
        jetson = jetson_conditions(self.nvpmodel, self.sys_root)
        info.update({k: v for k, v in jetson.items() if v is not None})  # absent facts left out
        return info

    def config(self) -> dict[str, Any]:
        return Backend.config(self)  # no command line: a host's trtexec path never keys a table
