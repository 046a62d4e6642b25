"""Stand-alone retraining of one architecture, and its held-out tracking score.

A search ranks candidates with weights inherited from the supernet; a pick is only better than its
reference once both are trained alone with the same budget and seeds. ``retrain`` trains the one
path of ``arch`` (``focus_prob`` 1: every iteration trains it) with the ranking recipe, starting
from the supernet's weights (fine-tuning) or, with ``from_scratch``, from a fresh initialisation
(the control). The result is an ordinary checkpoint (``tracking.checkpoint``) whose
``config.focus_arch`` names the architecture, so ``supernet evaluate ARCH --bn-batches 0`` and
``arch export ARCH --supernet`` read it as they read any supernet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tracking.progress import Progress
from tracking.space import Architecture
from tracking.train import TrainConfig, recipe_config, train_supernet


def retrain_config(arch: Architecture, iters: int, seed: int = 0, supernet: str | Path | None = None,
                   threads: int | None = None, batch_size: int | None = None, lr: float | None = None) -> TrainConfig:
    """The ranking recipe on ``arch``'s path alone for ``iters`` iterations (warm-up a fifth of
    them, at most the recipe's), from ``supernet``'s weights when given."""
    over: dict[str, Any] = {"focus_arch": arch.to_string(), "focus_prob": 1.0, "iters_per_epoch": iters,
                            "warmup_iters": min(30, iters // 5), "seed": seed, "threads": threads,
                            "init_from": None if supernet is None else str(supernet)}
    over.update({k: v for k, v in (("batch_size", batch_size), ("lr", lr)) if v is not None})
    return recipe_config(**over)


def retrain(arch: Architecture, data_dir: str | Path, out: str | Path, iters: int, *, seed: int = 0,
            supernet: str | Path | None = None, threads: int | None = None, batch_size: int | None = None,
            lr: float | None = None, overwrite: bool = False, device: str = "auto",
            progress: Progress | None = None) -> dict[str, Any]:
    """Train ``arch`` alone (from ``supernet``'s weights, or from scratch when it is None) and save
    the checkpoint to ``out``; returns :func:`tracking.train.train_supernet`'s summary."""
    cfg = retrain_config(arch, iters, seed, supernet, threads, batch_size, lr)
    return train_supernet(data_dir, out, cfg, progress=progress, overwrite=overwrite, device=device)


def held_out_score(checkpoint: str | Path, arch: Architecture, data_dir: str | Path, *, max_sequences: int = 20,
                   max_frames: int = 50, seed: int = 0, device: str | None = None) -> dict[str, Any]:
    """One-pass tracking of ``arch`` with a retrained checkpoint on held-out sequences: AO, SR@0.5,
    SR@0.75 and the score ``(AO + SR@0.5) / 2``, with the network's own BN statistics (it was
    trained on this one path, so there is nothing to recalibrate) and the checkpoint's tracker
    settings."""
    from tracking.checkpoint import load_supernet
    from tracking.tune import tracker_config_from_meta
    from tracking.validate import ValidationScorer

    net, meta = load_supernet(checkpoint)
    scorer = ValidationScorer(net, data_dir, "sequences", bn_batches=0, max_sequences=max_sequences,
                              max_frames=max_frames, seed=seed, tracker_config=tracker_config_from_meta(meta),
                              device=device)
    r = scorer.score(arch)
    return {k: r[k] for k in ("score", "score_se", "ao", "sr50", "sr75", "frames", "sequences") if k in r}
