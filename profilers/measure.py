"""The measurement protocol, and the parsing of raw timings into statistics.

Protocol: warm-up, then batches of repetitions until the relative IQR (IQR / median) falls under
a threshold after a minimum time, or a time cap / run cap is hit. Statistics: median (p50), p10,
p90, p99, IQR, count. Every result carries environment metadata (``profilers.env``).

Per-run overhead (the runtime's fixed cost of one call, paid once per unit model but only once
per end-to-end model) is measured on an identity model (:func:`measure_overhead`) so that a sum
of units can be corrected to match end-to-end runs.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from profilers.backends import CLOCKS, Backend, LoadedModel, ModelSource
from profilers.conditions import Watch
from profilers.env import cache_sizes, environment


def auto_flush_bytes() -> int:
    """4 x this CPU's L2 size (4 MiB when unknown): enough to evict L2, small against L3."""
    l2 = cache_sizes().get("L2")
    return 4 * l2 if l2 else 4 << 20


@dataclass(frozen=True)
class Protocol:
    """How long and how often to run one model."""

    warmup_runs: int = 5
    warmup_s: float = 0.05
    min_runs: int = 10
    max_runs: int = 100_000
    min_time_s: float = 0.15
    max_time_s: float = 0.5
    rel_iqr: float = 0.05  # stop early once IQR / median is below this (after min_time_s)
    batch_s: float = 0.025  # check the stopping rule about this often
    clock: str = "wall"  # or "cpu" (see LoadedModel.time_runs)
    # Bytes read before every run to evict private caches (0: none). Inside a whole network a
    # unit's weights were last touched a frame ago, so a unit timed hot in L2 is optimistic
    # (about -5% on sums here); default: auto_flush_bytes().
    flush_bytes: int = field(default_factory=auto_flush_bytes)
    # After the flush, read the inputs back into cache, as inside a network where the previous
    # unit has just written them. Off by default: two side-by-side runs on a noisy host disagreed
    # on its effect (docs/latency.md), and tables keep the protocol they were measured with.
    warm_inputs: bool = False

    def __post_init__(self) -> None:
        if self.flush_bytes < 0:
            raise ValueError("flush_bytes must be >= 0")
        if self.clock not in CLOCKS:
            raise ValueError(f"clock must be one of {', '.join(CLOCKS)}")
        if self.min_runs < 1 or self.max_runs < self.min_runs:
            raise ValueError("need 1 <= min_runs <= max_runs")
        if self.max_time_s <= 0 or self.min_time_s > self.max_time_s:
            raise ValueError("need 0 <= min_time_s <= max_time_s and max_time_s > 0")


@dataclass(frozen=True)
class Measurement:
    median_ms: float
    p10_ms: float
    p90_ms: float
    iqr_ms: float
    count: int
    env: dict[str, Any] = field(default_factory=dict)
    # The tail a user notices (1 frame in 100); None from parsers of older results. p50 is median_ms.
    p99_ms: float | None = None

    @property
    def rel_iqr(self) -> float:
        return self.iqr_ms / self.median_ms if self.median_ms > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(times_ns: np.ndarray, env: dict[str, Any] | None = None) -> Measurement:
    """Parse raw per-run timings (nanoseconds) into statistics (milliseconds)."""
    t = np.asarray(times_ns, dtype=np.float64) / 1e6
    if t.size == 0:
        raise ValueError("no timings to summarize")
    p10, q1, med, q3, p90, p99 = np.percentile(t, [10, 25, 50, 75, 90, 99])
    return Measurement(float(med), float(p10), float(p90), float(q3 - q1), int(t.size), dict(env or {}),
                       float(p99))


def time_loaded(model: LoadedModel, protocol: Protocol = Protocol()) -> np.ndarray:
    """Run the protocol on a loaded model; raw timings (ns) after warm-up. A model timed by a
    device's own tool (``LoadedModel.timed_batch``) returns that tool's runs instead."""
    batch = model.timed_batch()
    if batch is not None:
        return batch
    flush = np.ones(protocol.flush_bytes // 8) if protocol.flush_bytes else None
    t_end = time.perf_counter() + protocol.warmup_s
    n = 0
    while n < protocol.warmup_runs or time.perf_counter() < t_end:
        model.run()
        n += 1
    chunks: list[np.ndarray] = []
    count = 0
    start = time.perf_counter()
    batch = 1
    while True:
        t = model.time_runs(batch, protocol.clock, flush, protocol.warm_inputs)
        chunks.append(t)
        count += batch
        elapsed = time.perf_counter() - start
        if count >= protocol.max_runs or elapsed >= protocol.max_time_s:
            break
        if count >= protocol.min_runs and elapsed >= protocol.min_time_s:
            allt = np.concatenate(chunks)
            q1, med, q3 = np.percentile(allt, [25, 50, 75])
            if med > 0 and (q3 - q1) / med < protocol.rel_iqr:
                break
        per_run = max(float(np.median(t)) / 1e9, 1e-6)
        batch = int(min(max(1, protocol.batch_s / per_run), protocol.max_runs - count))
    return np.concatenate(chunks)


# How several rounds of one model (each a full protocol run, at different times) become one
# figure. ``min``: on a shared host, other tenants' load only ever slows a run down, so the
# fastest round is the least disturbed one (timeit's advice for the same reason); on this 2-core
# VM, 30 subnets measured in 4 shuffled rounds agreed with their LUT sums within 10% for 97%
# with min but 80% with the median round (docs/latency.md). ``median``: the older default.
ROUND_STATS = ("min", "median")


def check_round_stat(stat: str) -> str:
    if stat not in ROUND_STATS:
        raise ValueError(f"round_stat must be one of {', '.join(ROUND_STATS)}")
    return stat


def combine_rounds(values: np.ndarray, stat: str = "min", axis: int = 0) -> np.ndarray:
    """Per-model figure from rounds stacked along ``axis`` (see ``ROUND_STATS``)."""
    check_round_stat(stat)
    return np.min(values, axis=axis) if stat == "min" else np.median(values, axis=axis)


def pick_round(rounds: list[Measurement], stat: str = "min") -> Measurement:
    """The round that represents a model: the fastest (``min``) or the median one."""
    check_round_stat(stat)
    ordered = sorted(rounds, key=lambda m: m.median_ms)
    return ordered[0] if stat == "min" else ordered[len(ordered) // 2]


def measure(backend: Backend, model: ModelSource | LoadedModel, protocol: Protocol = Protocol(),
            seed: int = 0) -> Measurement:
    """Measure one model (path, bytes or an already loaded model) with ``backend``."""
    loaded = model if isinstance(model, LoadedModel) else backend.load(model, seed=seed)
    try:
        with Watch() as watch:  # the device's state while timing: other load, clock, temperature
            times = time_loaded(loaded, protocol)
    finally:
        if loaded is not model:
            loaded.close()
    return summarize(times, {**environment(backend.runtime_info()), "clock": protocol.clock,
                             "flush_bytes": protocol.flush_bytes,
                             "warm_inputs": protocol.warm_inputs, "conditions": watch.conditions})


# -- per-run overhead ---------------------------------------------------------------------------

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(num: int, payload: bytes | int | str) -> bytes:
    if isinstance(payload, int):
        return _varint(num << 3) + _varint(payload)
    if isinstance(payload, str):
        payload = payload.encode()
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def identity_model(shape: tuple[int, ...] = (1,), opset: int = 17) -> bytes:
    """A serialized ONNX model ``y = Identity(x)`` (float32), written without the onnx package."""
    dims = b"".join(_field(1, _field(1, d)) for d in shape)  # TensorShapeProto.dim{dim_value}
    tensor_type = _field(1, 1) + _field(2, dims)  # elem_type FLOAT, shape
    type_proto = _field(1, tensor_type)

    def value_info(name: str) -> bytes:
        return _field(1, name) + _field(2, type_proto)

    node = _field(1, "x") + _field(2, "y") + _field(4, "Identity")
    graph = _field(1, node) + _field(2, "overhead") + _field(11, value_info("x")) + _field(12, value_info("y"))
    return (_field(1, 8) + _field(2, "lutnas") + _field(7, graph)
            + _field(8, _field(1, "") + _field(2, opset)))


def measure_overhead(backend: Backend, protocol: Protocol = Protocol(), model: ModelSource | None = None) -> Measurement:
    """Per-run overhead of ``backend``: the median time of an identity model (``model``: one in the
    backend's format; ONNX backends default to :func:`identity_model`, written here without onnx)."""
    if model is None:
        if backend.model_format != "onnx":
            raise ValueError(f"the {backend.name} backend runs {backend.model_format} models: pass its overhead "
                             "model (latency_tables.units.export_overhead_model)")
        model = identity_model()
    return measure(backend, model, protocol)
