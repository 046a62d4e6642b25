"""Tracker hyper-parameters tuned for one trained supernet, on training sequences.

LightTrack and Ocean ship hyper-parameters (size-update rate ``lr``, cosine-window influence,
scale/ratio penalty ``penalty_k``) tuned per benchmark for their fully trained networks; the
defaults here are LightTrack's VOT values. A supernet trained for minutes has other strengths
(it localises long before it measures size, docs/validation.md), so the tracker that suits it
differs. ``tune_tracker`` picks the values by coordinate search over a small grid, scoring
``(AO + SR@0.5) / 2`` of one architecture (LightTrack-Mobile by default) on *training*
sequences, never the validation ones, so validation scores are not tuned on. The result is
stored in the checkpoint's meta (``meta["tracker"]``) and used by every scorer built from it
(:func:`tracker_config_from_meta`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tracking.progress import Progress
from tracking.space import Architecture, lighttrack_mobile
from tracking.tracker import TrackerConfig

# Searched one parameter at a time, in this order, each time keeping the best value so far.
GRID: dict[str, tuple[float, ...]] = {
    "lr": (0.0, 0.1, 0.2, 0.35, 0.616),
    "window_influence": (0.15, 0.225, 0.35, 0.5, 0.65),
    "penalty_k": (0.007, 0.05, 0.15),
}


def tracker_config_from_meta(meta: dict[str, Any]) -> TrackerConfig | None:
    """The tuned tracker of a checkpoint's meta, or None (then LightTrack's defaults apply)."""
    tuned = meta.get("tracker")
    return TrackerConfig(**tuned["config"]) if tuned else None


def tune_tracker(supernet: Any, data_dir: str | Path, arch: Architecture | None = None, *,
                 grid: dict[str, tuple[float, ...]] | None = None, max_sequences: int = 8,
                 max_frames: int = 40, bn_batches: int = 2, bn_batch_size: int = 32, seed: int = 0,
                 progress: Progress | None = None, device: str | None = None) -> dict[str, Any]:
    """Coordinate search of ``grid`` (default :data:`GRID`) from LightTrack's values.

    Returns ``{"config": best TrackerConfig as a dict, "score", "ao", "sr50", "default": the
    defaults' result, "trials": [{"config", "score", "ao", "sr50"}, ...], "arch", "data",
    "sequences", "frames"}``; each distinct setting is tracked once. ``progress``: called with
    ``("tune", trials done, trials)`` after each trial.
    """
    from tracking.validate import ValidationScorer

    arch = arch or lighttrack_mobile()
    grid = grid or GRID
    unknown = set(grid) - set(TrackerConfig.model_fields)
    if unknown:
        raise ValueError(f"not tracker parameters: {sorted(unknown)}")
    scorer = ValidationScorer(supernet, data_dir, "sequences", bn_batches=bn_batches, bn_batch_size=bn_batch_size,
                              max_sequences=max_sequences, max_frames=max_frames, seed=seed, device=device)
    trials: dict[TrackerConfig, dict[str, Any]] = {}  # frozen pydantic models hash by value
    best = TrackerConfig()
    candidates = [(name, float(v)) for name, values in grid.items() for v in values]
    with scorer.calibrated(arch):

        def trial(cfg: TrackerConfig, done: int) -> dict[str, Any]:
            if cfg not in trials:
                res = scorer.track_sequences(arch, cfg)
                trials[cfg] = {"config": cfg.model_dump(), **{k: res[k] for k in ("score", "ao", "sr50")}}
            if progress:
                progress("tune", done, 1 + len(candidates))
            return trials[cfg]

        default = best_res = trial(best, 1)
        for done, (name, v) in enumerate(candidates, 2):
            cand = best.model_copy(update={name: v})
            res = trial(cand, done)
            if res["score"] > best_res["score"]:
                best, best_res = cand, res
    return {"config": best.model_dump(), "score": best_res["score"], "ao": best_res["ao"], "sr50": best_res["sr50"],
            "default": default, "trials": list(trials.values()), "arch": arch.to_string(),
            "data": str(Path(data_dir).resolve()), "sequences": len(scorer.sequences), "frames": max_frames}
