"""Tracker-level latency: what one tracked frame costs, not only the network.

A tracker runs the template branch once per sequence and, every frame, crops and resizes the
search region around the last position (``tracking.crop``), normalises it, runs the search branch,
then post-processes the maps (sigmoid, scale/ratio penalty, cosine window, argmax, box decode and
smoothing; ``tracking.tracker``). Published tracker fps mix these differently; ours say what they
hold:

* ``latency_ms``: the search branch alone (the table's prediction);
* ``prepost_ms``: the tracker's own work per frame, measured on the target by running the real
  :class:`~tracking.tracker.Tracker` on a ``FRAME_HW`` frame with the network's outputs held fixed
  (so only crop, resize, normalisation and post-processing are timed);
* ``frame_overhead_ms``: what a frame costs beyond the network measured alone, measured on a few
  real subnets in the whole loop (the parts disturb each other's caches, so it exceeds
  ``prepost_ms``: :func:`measure_frame`);
* ``frame_ms = latency_ms + frame_overhead_ms`` (``prepost_ms`` where the loop cannot run: int8 and
  command-backend tables) and ``fps = 1000 / frame_ms``.

Not included: decoding or capturing the frame, and the template branch (once per sequence).
:func:`validate_frames` checks ``frame_ms`` against the measured per-frame time of the whole
tracking loop with the exported subnet (onnxruntime, the table's threads).
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from latency_tables.predict import frame_figures
from tracking.space import Architecture, SearchSpace, sample_many
from tracking.tracker import Tracker, TrackerConfig

FRAME_HW = (480, 640)  # VGA: the frame the pre/post-processing figure is measured on
FRAME_SEED = 90_101  # the subnets validate_frames tracks with (disjoint from validate's seeds)


class _HeldOutputs:
    """A search branch whose outputs are fixed maps: the tracker's own work is all that runs."""

    search_session = None  # marks a numpy-in/out model for tracking.tracker._adapt

    def __init__(self, score_size: int) -> None:
        rng = np.random.default_rng(0)  # seeded maps: the argmax lands on an ordinary cell
        self.cls = rng.normal(0, 1, (1, 1, score_size, score_size)).astype(np.float32)
        self.reg = (20 + rng.normal(0, 1, (1, 4, score_size, score_size))).astype(np.float32)

    def template_feature(self, z: np.ndarray) -> None:
        return None

    def track(self, zf: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.cls, self.reg


class _TimedNetwork:
    """An ONNX tracker model whose search-branch calls are timed, to split a frame's time into the
    network's share and the tracker's own."""

    def __init__(self, model: Any) -> None:
        self.model, self.search_session, self.seconds = model, model.search_session, []

    def template_feature(self, z: np.ndarray) -> Any:
        return self.model.template_feature(z)

    def track(self, zf: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t0 = time.perf_counter()
        out = self.model.track(zf, x)
        self.seconds.append(time.perf_counter() - t0)
        return out


def _frames(frame_hw: tuple[int, int], n: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (*frame_hw, 3), dtype=np.uint8) for _ in range(n)]


def _time_updates(tracker: Tracker, frames: Sequence[np.ndarray], warmup: int) -> np.ndarray:
    """Seconds of each ``update`` after ``warmup`` untimed ones (frames reused cyclically)."""
    h, w = frames[0].shape[:2]
    tracker.init(frames[0], (w / 2 - 40, h / 2 - 30, 80, 60))
    times = []
    for i in range(warmup + len(frames)):
        f = frames[i % len(frames)]
        t0 = time.perf_counter()
        tracker.update(f)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return np.asarray(times)


def measure_prepost(space: SearchSpace, frame_hw: tuple[int, int] = FRAME_HW, runs: int = 200,
                    seed: int = 0) -> dict[str, Any]:
    """The tracker's per-frame work beyond the network on this machine (ms): the record a table
    keeps as ``runtime["frame"]``."""
    cfg = TrackerConfig(template_size=space.template_size, search_size=space.search_size)
    tracker = Tracker(_HeldOutputs(cfg.score_size), cfg)
    times = _time_updates(tracker, _frames(frame_hw, 8, seed), warmup=20) * 1e3
    while len(times) < runs:
        times = np.concatenate([times, _time_updates(tracker, _frames(frame_hw, 8, seed), warmup=2) * 1e3])
    return {"prepost_ms": float(np.median(times)), "prepost_p90_ms": float(np.percentile(times, 90)),
            "frame_hw": list(frame_hw), "search_size": space.search_size, "runs": len(times),
            "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}


def _check_runtime(runtime: dict[str, Any]) -> None:
    if runtime.get("backend", "onnxruntime") != "onnxruntime" or runtime.get("precision", "fp32") != "fp32":
        raise ValueError("the tracking loop runs fp32 onnxruntime tables (the tracker's ONNX models)")


def _track_loops(archs: Sequence[Architecture], space: SearchSpace, runtime: dict[str, Any], out_dir: Path,
                 frame_hw: tuple[int, int], frames: int, seed: int, progress: Any = None) -> list[dict[str, Any]]:
    """Each architecture exported (both branches, one seeded random supernet) and run in the whole
    tracking loop with onnxruntime (the table's provider and threads): per architecture the median
    ``frame_ms`` of one update, its ``network_ms`` (the search branch's calls inside the loop) and
    ``search_onnx`` (the graph, for a measurement alone)."""
    import torch

    from tracking.export import OnnxTrackerModel, export_onnx
    from tracking.subnet import extract_subnet
    from tracking.supernet import Supernet

    torch.manual_seed(seed)
    supernet = Supernet(space).eval()
    cfg = TrackerConfig(template_size=space.template_size, search_size=space.search_size)
    test_frames = _frames(frame_hw, 8, seed)
    out = []
    for i, arch in enumerate(archs):
        d = out_dir / f"{i:03d}"
        paths = export_onnx(extract_subnet(supernet, arch), d, cfg.template_size, cfg.search_size)
        model = _TimedNetwork(OnnxTrackerModel(d, [runtime.get("provider", "CPUExecutionProvider")],
                                               threads=int(runtime.get("threads", 1))))
        total = _time_updates(Tracker(model, cfg), test_frames * (frames // 8 + 1), warmup=10)[:frames]
        network = np.asarray(model.seconds[-len(total):])  # the same updates' search-branch calls
        out.append({"arch": arch, "frame_ms": float(np.median(total)) * 1e3,
                    "network_ms": float(np.median(network)) * 1e3,
                    "prepost_ms": float(np.median(total - network)) * 1e3, "search_onnx": paths["search"]})
        if progress:
            progress("frames", i + 1, len(archs))
    return out


def measure_frame(space: SearchSpace, backend: Any, protocol: Any, runtime: dict[str, Any], k: int = 3,
                  rounds: int = 1, round_stat: str = "min", seed: int = 0, frames: int = 60) -> dict[str, Any]:
    """The table's frame record: :func:`measure_prepost`, and the per-frame overhead that
    ``frame_ms`` adds to a prediction, ``frame_overhead_ms``: over ``k`` seeded subnets, the median
    of (one update of the whole tracking loop) minus (the same search graph measured alone with the
    table's protocol). Inside the loop the crop evicts the network's weights from cache and the
    network the crop's data, so a frame costs more than the two parts timed apart (2026-12-06,
    1 thread: pre/post-processing 2.6 ms alone, 3.2 ms in the loop, and the network 3-4% slower);
    the difference is measured once per table, on real subnets, so ``frame_ms`` holds it."""
    from latency_tables.fidelity import measure_models

    _check_runtime(runtime)
    rec = measure_prepost(space, seed=seed)
    archs = sample_many(k, FRAME_SEED + 1, space)  # disjoint from validate_frames' subnets
    with tempfile.TemporaryDirectory(prefix="lutnas-frame-") as tmp:
        loops = _track_loops(archs, space, runtime, Path(tmp), tuple(rec["frame_hw"]), frames, seed)
        alone = measure_models(backend, [lp["search_onnx"] for lp in loops], protocol, rounds, seed=seed,
                               round_stat=round_stat)
    extra = [lp["frame_ms"] - float(a) for lp, a in zip(loops, alone, strict=True)]
    return {**rec, "frame_overhead_ms": float(np.median(extra)), "overhead_subnets": len(extra),
            "prepost_in_loop_ms": float(np.median([lp["prepost_ms"] for lp in loops]))}


def measure_table_frame(store: Any, info: Any, space: SearchSpace, backend: Any, protocol: Any, rounds: int = 1,
                        round_stat: str = "min", seed: int = 0) -> Any:
    """Measure the frame record (:func:`measure_frame`) and keep it in the table's runtime; returns
    the updated table info. Tables the loop cannot run (int8, the command backend) keep the
    pre/post-processing time alone."""
    try:
        rec = measure_frame(space, backend, protocol, info.runtime, rounds=rounds, round_stat=round_stat, seed=seed)
    except ValueError:
        rec = measure_prepost(space, seed=seed)
    return store.update(info.id, runtime={**info.runtime, "frame": rec})


def validate_frames(predictor: Any, frame: dict[str, Any], runtime: dict[str, Any], samples: int = 5,
                    seed: int = FRAME_SEED, frames: int = 60, progress: Any = None) -> dict[str, Any]:
    """Track ``frames`` frames with each of ``samples`` seeded subnets (:func:`_track_loops`) and
    compare the median time of one update with the predicted ``frame_ms``: ``{"n", "within_5",
    "within_10", "mean_error", "points": [...]}``, with the search branch's calls timed inside
    the loop too (``network_mean_error``: the table's prediction against them;
    ``prepost_in_loop_ms``: the rest of an update)."""
    _check_runtime(runtime)
    space = predictor.space
    with tempfile.TemporaryDirectory(prefix="lutnas-frames-") as tmp:
        loops = _track_loops(sample_many(samples, seed, space), space, runtime, Path(tmp),
                             tuple(frame.get("frame_hw", FRAME_HW)), frames, seed, progress)
    points = []
    for lp in loops:
        predicted_ms = predictor.predict(lp["arch"])
        points.append({"arch": lp["arch"].to_string(), "predicted_frame_ms": frame_figures(predicted_ms, frame)["frame_ms"],
                       "measured_frame_ms": lp["frame_ms"], "predicted_ms": predicted_ms,
                       "network_in_loop_ms": lp["network_ms"], "prepost_in_loop_ms": lp["prepost_ms"]})
    err = np.array([p["predicted_frame_ms"] / p["measured_frame_ms"] - 1 for p in points])
    net_err = np.array([p["predicted_ms"] / p["network_in_loop_ms"] - 1 for p in points])
    return {"n": len(points), "within_5": float(np.mean(np.abs(err) <= 0.05)),
            "within_10": float(np.mean(np.abs(err) <= 0.10)), "mean_error": float(err.mean()),
            "prepost_ms": float(frame["prepost_ms"]), "frame_overhead_ms": frame.get("frame_overhead_ms"),
            # where an error comes from: the network's share, timed inside the loop, and the rest
            "network_mean_error": float(net_err.mean()),
            "prepost_in_loop_ms": float(np.median([p["prepost_in_loop_ms"] for p in points])), "points": points}
