"""Single-path one-shot supernet training (LightTrack / SPOS).

Each iteration samples one path uniformly from the search space (every backbone block choice,
the output position, both heads' widths and layers), runs a batch of template/search pairs
through it and updates only the weights on that path.

Losses (LightTrack): weighted binary cross-entropy for classification (0.5 x mean over positive
cells + 0.5 x mean over negative cells) and the IoU loss ``-log((I + 1) / (U + 1))`` on every
cell inside the true box for regression (as Ocean, whose training LightTrack reuses); total = cls + 1.2 x reg. SGD, momentum 0.9, weight decay 1e-4, linear
warm-up then cosine decay.

Determinism and resuming: the path and the pairs of global iteration ``g`` are drawn from seeds
derived from ``(config.seed, g)`` only, and the checkpoint carries the weights, BN statistics,
optimizer state and ``g``; so a run resumed from any checkpoint gives the same weights as one
that never stopped (same thread count, same machine).
"""

from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from torch import Tensor

from tracking.data.got10k import read_dataset
from tracking.data.pairs import PairConfig, PairDataset, collate
from tracking.distributed import Dist
from tracking.progress import Progress
from tracking.space import (
    LIGHTTRACK_MOBILE,
    Architecture,
    SearchSpace,
    enumerate_genes,
    from_genes,
    sample,
    to_genes,
)
from tracking.tracker import TrackerConfig


class TrainConfig(BaseModel):
    """Training settings; stored in the checkpoint's meta (``config``)."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(1, ge=1)
    iters_per_epoch: int = Field(100, ge=1)
    batch_size: int = Field(8, ge=1)
    lr: float = Field(0.01, gt=0)
    warmup_iters: int = Field(30, ge=0)
    final_lr_ratio: float = Field(0.05, ge=0, le=1)
    optimizer: Literal["sgd", "adamw"] = "sgd"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    cls_weight: float = 1.0
    reg_weight: float = 1.2
    size_weight: float = Field(0.0, ge=0, description="weight of the log-size L1 loss (size_loss)")
    grad_clip: float = Field(10.0, gt=0)
    seed: int = 0
    threads: int | None = Field(None, ge=1)
    space: Literal["paper", "code"] = "paper"
    checkpoint_every: int = Field(0, ge=0, description="also checkpoint every N iterations (0: per epoch)")
    channels_last: bool = Field(True, description="NHWC tensors: 1.5-2x faster on CPU for these convs")
    # 0 by default: on 2 cores a worker competes with torch's threads (measured 0.96x, bench_validation)
    workers: int = Field(0, ge=0, description="processes preparing pairs ahead of the network (0: in the loop)")
    pairs: dict[str, Any] = Field(default_factory=dict, description="PairConfig overrides")
    # Fairness lever: the architecture that must track well (LightTrack-Mobile in the demo) gets
    # this share of the iterations; the rest stay uniform over the space. 0 is plain SPOS.
    focus_arch: str | None = Field(None, description="LightTrack string trained with probability focus_prob")
    focus_prob: float = Field(0.0, ge=0, le=1)
    tracker: dict[str, Any] | None = Field(
        None, description="tracker settings that go with this recipe, stored as the checkpoint's meta['tracker']")
    # Few-shot sub-supernets: paths drawn uniformly with these genes (tracking.space.enumerate_genes
    # names) limited to the listed values, e.g. {"output": [4, 5, 6, 7]}: the last stage's outputs.
    subspace: dict[str, list[int]] | None = Field(
        None, description="gene name -> allowed values: paths are sampled uniformly within that subspace")
    # Retraining a pick (tracking.retrain): start from these weights instead of a fresh init.
    init_from: str | None = Field(None, description="supernet checkpoint whose weights a fresh run starts from")

    @field_validator("focus_arch")
    @classmethod
    def _parse_focus(cls, v: str | None) -> str | None:
        return None if v is None else Architecture.from_string(v).to_string()  # raises on a bad string

    @field_validator("tracker")
    @classmethod
    def _check_tracker(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if v is None else TrackerConfig(**v).model_dump()

    @model_validator(mode="after")
    def _check_subspace(self) -> TrainConfig:
        if self.subspace:
            cards = dict(enumerate_genes(self.search_space()))
            for gene, values in self.subspace.items():
                if gene not in cards:
                    raise ValueError(f"subspace: unknown gene {gene!r} (one of {', '.join(cards)})")
                if not values or any(not 0 <= v < cards[gene] for v in values):
                    raise ValueError(f"subspace: {gene} values must be in 0..{cards[gene] - 1}, got {values}")
        return self

    @property
    def total_iters(self) -> int:
        return self.epochs * self.iters_per_epoch

    def search_space(self) -> SearchSpace:
        return SearchSpace.named(self.space)

    def pair_config(self) -> PairConfig:
        return PairConfig(**self.pairs)


# The recipe (docs/validation.md, experiments/bench_ranking.py): what the search ranks with. Paths
# are uniform over the space (plain single-path one-shot sampling): a supernet trained with one
# path favoured scores architectures by how much they share with it (bench_ranking: Kendall tau
# +0.33 with Mobile's path half the time, +0.60 uniform). 1800 iterations: against the 120-sequence
# ground truth, tau +0.66 / +0.58 (two seeds) where 450 gave +0.42 to +0.55 over three (31-45 min here).
RECIPE: dict[str, Any] = {
    "epochs": 1,
    "iters_per_epoch": 1800,
    "batch_size": 8,
    "optimizer": "adamw",  # learnt faster than SGD at this budget (docs/validation.md)
    "lr": 0.001,
    "warmup_iters": 30,
    "size_weight": 1.0,
    "pairs": {"max_scale": 0.3},
    # tracker settings that go with it (chosen on training sequences, never the held-out ones):
    # the box keeps its first size, since at this budget the regressor barely measures size
    "tracker": {"lr": 0.0, "window_influence": 0.5, "penalty_k": 0.007},
}
# LightTrack-Mobile's path on half the iterations (a separate seeded coin): the best Mobile
# tracker for a tracking demo, never what a search ranks with.
MOBILE_FOCUS: dict[str, Any] = {"focus_arch": LIGHTTRACK_MOBILE, "focus_prob": 0.5}
# What `lutnas demo` and the Mobile recipe train: the short supernet of the 7-minute demo (its
# ranking is the weaker one of 450 iterations; docs/validation.md)
SHORT_ITERS = 450


# Named recipes for `lutnas supernet train --recipe`: "ranking" (the default, uniform paths: what
# searches rank with), "mobile" (Mobile's path half the iterations, for a Mobile tracker demo);
# "fair" is the earlier name of "ranking".
RECIPES: dict[str, dict[str, Any]] = {
    "ranking": RECIPE,
    "fair": RECIPE,
    "mobile": {**RECIPE, **MOBILE_FOCUS, "iters_per_epoch": SHORT_ITERS},
}


def recipe_config(recipe: str = "ranking", **overrides: Any) -> TrainConfig:
    """The named recipe (:data:`RECIPES`, default the ranking one) as a :class:`TrainConfig`,
    with ``overrides`` (any field) on top."""
    if recipe not in RECIPES:
        raise ValueError(f"recipe must be one of {', '.join(RECIPES)}, got {recipe!r}")
    return TrainConfig(**{**RECIPES[recipe], **overrides})


def recipe_tracker() -> TrackerConfig:
    return TrackerConfig(**RECIPE["tracker"])


def lr_at(cfg: TrainConfig, it: int) -> float:
    """Linear warm-up to ``lr`` then cosine decay to ``lr * final_lr_ratio``."""
    if it < cfg.warmup_iters:
        return cfg.lr * (it + 1) / cfg.warmup_iters
    span = max(1, cfg.total_iters - cfg.warmup_iters)
    t = min(1.0, (it - cfg.warmup_iters) / span)
    lo = cfg.lr * cfg.final_lr_ratio
    return lo + 0.5 * (cfg.lr - lo) * (1 + math.cos(math.pi * t))


def path_for_iteration(seed: int, it: int, space: SearchSpace, focus: Architecture | None = None,
                       focus_prob: float = 0.0, subspace: dict[str, list[int]] | None = None) -> Architecture:
    """The path of global iteration ``it`` (depends on nothing else): ``focus`` with probability
    ``focus_prob``, otherwise uniform over ``space`` (within ``subspace`` when given)."""
    rng = random.Random(f"lutnas-path-{seed}-{it}")  # seeded path sampling, not a secret  # nosec B311
    if focus is not None and focus_prob > 0:
        # a separate stream for the coin, so the uniform draws are those of plain SPOS
        if random.Random(f"lutnas-focus-{seed}-{it}").random() < focus_prob:  # seeded, not a secret  # nosec B311
            return focus
    arch = sample(rng, space)
    if not subspace:
        return arch
    names = [n for n, _ in enumerate_genes(space)]
    genes = to_genes(arch, space)
    for gene, values in subspace.items():  # each limited gene uniform over its allowed values
        genes[names.index(gene)] = rng.choice(values)
    return from_genes(genes, space)


# -- losses -------------------------------------------------------------------------------------

def weighted_bce(logits: Tensor, label: Tensor, counts: Tensor | None = None) -> Tensor:
    """0.5 x BCE over positives + 0.5 x BCE over negatives (each a mean; empty side counts 0).
    ``counts``: (positives, negatives) of the whole distributed batch, of which this is a shard."""
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, label, reduction="none")
    pos, neg = label > 0.5, label <= 0.5
    if counts is not None:  # sums over global counts: the ranks' losses add up to the batch's
        return 0.5 * loss[pos].sum() / counts[0].clamp(min=1) + 0.5 * loss[neg].sum() / counts[1].clamp(min=1)
    lp = loss[pos].mean() if pos.any() else loss.sum() * 0
    ln = loss[neg].mean() if neg.any() else loss.sum() * 0
    return 0.5 * lp + 0.5 * ln


def iou_loss(pred: Tensor, target: Tensor, mask: Tensor, count: Tensor | None = None) -> Tensor:
    """``-log((I + 1) / (U + 1))`` between ltrb boxes sharing a cell centre, mean over the cells of
    ``mask`` (those inside the true box)."""
    pos = mask[:, 0] > 0.5  # [B,16,16]
    if not pos.any():
        return pred.sum() * 0
    p = pred.permute(0, 2, 3, 1)[pos]  # [P,4]
    t = target.permute(0, 2, 3, 1)[pos]
    wi = torch.minimum(p[:, 0], t[:, 0]) + torch.minimum(p[:, 2], t[:, 2])
    hi = torch.minimum(p[:, 1], t[:, 1]) + torch.minimum(p[:, 3], t[:, 3])
    inter = wi.clamp(min=0) * hi.clamp(min=0)
    area_p = (p[:, 0] + p[:, 2]) * (p[:, 1] + p[:, 3])
    area_t = (t[:, 0] + t[:, 2]) * (t[:, 1] + t[:, 3])
    union = area_p + area_t - inter
    if count is not None:  # a shard of a distributed batch with ``count`` positive cells in all
        return -torch.log((inter + 1) / (union + 1)).sum() / count.clamp(min=1)
    return -torch.log((inter + 1) / (union + 1)).mean()


def size_loss(pred: Tensor, target: Tensor, mask: Tensor, count: Tensor | None = None) -> Tensor:
    """Mean ``|log(pred w / true w)| + |log(pred h / true h)|`` of the ltrb boxes over the cells of
    ``mask``: the size error alone, whatever the cell's position in the box."""
    pos = mask[:, 0] > 0.5
    if not pos.any():
        return pred.sum() * 0
    p = pred.permute(0, 2, 3, 1)[pos]
    t = target.permute(0, 2, 3, 1)[pos]
    lw = torch.log((p[:, 0] + p[:, 2]) / (t[:, 0] + t[:, 2]))
    lh = torch.log((p[:, 1] + p[:, 3]) / (t[:, 1] + t[:, 3]))
    if count is not None:
        return (lw.abs() + lh.abs()).sum() / count.clamp(min=1)
    return (lw.abs() + lh.abs()).mean()


def tracking_loss(cls: Tensor, reg: Tensor, batch: dict[str, Tensor], cfg: TrainConfig,
                  d: Dist | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Total, classification and regression losses; with ``d`` (several ranks) this rank's share
    of the global batch's losses (they sum over ranks to the single-process values)."""
    counts = None
    if d is not None and d.world > 1:
        pos, cells = batch["cls"] > 0.5, batch["reg_mask"][:, 0] > 0.5
        counts = d.sum(torch.stack([pos.sum(), (~pos).sum(), cells.sum()]).to(cls.dtype))
    lc = weighted_bce(cls, batch["cls"], None if counts is None else counts[:2])
    lr = iou_loss(reg, batch["reg"], batch["reg_mask"], None if counts is None else counts[2])
    total = cfg.cls_weight * lc + cfg.reg_weight * lr
    if cfg.size_weight > 0:
        total = total + cfg.size_weight * size_loss(reg, batch["reg"], batch["reg_mask"],
                                                    None if counts is None else counts[2])
    return total, lc, lr


# -- the loop -----------------------------------------------------------------------------------

def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_optimizer(params: Any, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def _batches(pairs: PairDataset, cfg: TrainConfig, start: int, end: int, d: Dist | None = None,
             workers: int | None = None, pin: bool = False) -> Any:
    """Batches of iterations ``start..end-1`` in order (with ``d``: this rank's shard of each global
    batch). With workers, the next batches are cropped in other processes while the network runs
    (for machines with cores to spare); item ``i`` depends only on ``(seed, i)``, so the batches
    are the same either way, and the ranks' shards together are the single-process batch."""
    rank, world = (d.rank, d.world) if d is not None else (0, 1)
    b = cfg.batch_size // world
    indices = [it * cfg.batch_size + rank * b + k for it in range(start, end) for k in range(b)]
    workers = cfg.workers if workers is None else workers
    if workers == 0:
        return (collate([pairs[i] for i in indices[k:k + b]]) for k in range(0, len(indices), b))
    return torch.utils.data.DataLoader(pairs, batch_size=b, sampler=indices, collate_fn=collate,
                                       num_workers=workers, prefetch_factor=2, pin_memory=pin)


def check_shards(batch_size: int, nproc: int) -> None:
    if batch_size % nproc:
        raise ValueError(f"the batch of {batch_size} pairs does not split evenly over {nproc} processes")


def train_supernet(data_dir: str | Path, out: str | Path, config: TrainConfig | dict | None = None,
                   progress: Progress | None = None, resume: bool = False, overwrite: bool = False,
                   stop_after: int | None = None, time_limit_s: float | None = None, device: str = "auto",
                   precision: str = "fp32", nproc: int = 1) -> dict[str, Any]:
    """Train a supernet on ``data_dir`` and save it to ``out`` (``tracking.checkpoint`` format).

    ``device``: auto, cpu, cuda or cuda:N (:mod:`tracking.devices`); ``precision``: fp32, or
    bf16/fp16 autocast on CUDA (``fp64``, CPU only, exists for exactness tests). ``nproc > 1``
    trains in that many processes (one per GPU on CUDA, gloo on the CPU; :mod:`tracking.distributed`)
    splitting each global batch of ``batch_size`` pairs; so does a run started by torchrun (``WORLD_SIZE`` set). Either gives the weights of one
    process to float rounding; rank 0 writes the checkpoint and reports progress.

    ``progress`` (:mod:`tracking.progress`): called with ``("train", iterations done, total
    iterations, note="epoch e/E loss ...")`` after each iteration.
    ``resume=True`` continues from ``out`` (its stored config wins, except ``epochs``, which may be
    raised). ``stop_after`` stops (and checkpoints) after that many global iterations, as an
    interruption would; ``time_limit_s`` does the same once that many seconds have passed (the
    checkpoint can be resumed later). Returns a summary: iterations run, seconds, final losses,
    checkpoint path, ``stopped_early``.
    """
    out = Path(out)
    cfg = config if isinstance(config, TrainConfig) else TrainConfig(**(config or {}))
    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        return _spawn_ranks(nproc, data_dir, out, cfg, device=device, progress=progress, resume=resume,
                            overwrite=overwrite, stop_after=stop_after, time_limit_s=time_limit_s,
                            precision=precision)
    run, pairs = _open_run(data_dir, out, cfg, resume, overwrite, device, precision)
    cfg = run.cfg  # a resumed run's stored config
    end = cfg.total_iters if stop_after is None else min(cfg.total_iters, stop_after)
    run.supernet.train()
    t0, cpu0 = time.perf_counter(), time.process_time()
    try:
        end = _loop(run, pairs, end, progress if run.d.main else None, time_limit_s, t0)
    except KeyboardInterrupt:
        _save(run, len(run.history) and run.history[-1][0] + 1 or run.start)
        raise
    if end > run.start and end % cfg.iters_per_epoch != 0:
        _save(run, end)
    elif end == run.start and not out.exists():
        _save(run, end)
    return _summary(run, end, time.perf_counter() - t0, time.process_time() - cpu0)


@dataclass
class _Run:
    """One training run as this process (rank) holds it."""

    cfg: TrainConfig
    out: Path
    data_dir: Path
    supernet: Any  # tracking.supernet.Supernet
    d: Dist
    dev: torch.device
    precision: str
    start: int  # the global iteration it starts (or resumes) at
    history: list[list[float]]  # [iteration, loss, cls loss, reg loss]
    fmt: torch.memory_format = torch.contiguous_format
    wide: torch.dtype | None = None  # fp64: exactness checks (tests), CPU only
    opt: Any = None
    scaler: Any = None
    focus: Architecture | None = None


def _spawn_ranks(nproc: int, data_dir: str | Path, out: Path, cfg: TrainConfig, **kwargs: Any) -> dict[str, Any]:
    """Check here everything a rank would fail on, before any process starts; then train in ``nproc``
    processes (rank 0's progress reports are relayed to this process's callback)."""
    from tracking import distributed
    from tracking.checkpoint import load_supernet
    from tracking.devices import resolve_device, resolve_precision

    dev = resolve_device(kwargs["device"])
    resolve_precision(kwargs["precision"], dev)
    if dev.type == "cuda" and nproc > torch.cuda.device_count():
        raise ValueError(f"--nproc {nproc}: one process per GPU, and this machine has {torch.cuda.device_count()}")
    resume = kwargs["resume"]
    if out.exists() and not resume and not kwargs["overwrite"]:
        raise FileExistsError(f"{out} exists: pass --resume to continue it or --overwrite to replace it")
    check_shards(load_supernet(out)[1]["config"]["batch_size"] if resume and out.exists() else cfg.batch_size, nproc)
    if len(read_dataset(data_dir, on_error="skip")) == 0:
        raise ValueError(f"{data_dir}: no usable sequences (run `lutnas data check`)")
    return distributed.spawn(nproc, train_supernet, data_dir, out, cfg, **kwargs)


def _resume_or_start(out: Path, cfg: TrainConfig, resume: bool, overwrite: bool) -> tuple[Any, TrainConfig, dict]:
    """The supernet, the config in force and the checkpoint's meta (``{}`` for a fresh start)."""
    from tracking.checkpoint import load_supernet
    from tracking.supernet import Supernet

    if resume and out.exists():
        supernet, meta = load_supernet(out)
        stored = TrainConfig(**meta["config"])
        return supernet, stored.model_copy(update={"epochs": max(stored.epochs, cfg.epochs)}), meta
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists: pass --resume to continue it or --overwrite to replace it")
    seed_everything(cfg.seed)
    if cfg.init_from is None:
        return Supernet(cfg.search_space()), cfg, {}
    inherited, _ = load_supernet(cfg.init_from)  # weights only: checkpoints never unpickle objects
    if inherited.space.to_dict() != cfg.search_space().to_dict():
        raise ValueError(f"{cfg.init_from}: its supernet is not on the {cfg.space!r} space")
    return inherited, cfg, {}


def _open_run(data_dir: str | Path, out: Path, cfg: TrainConfig, resume: bool, overwrite: bool, device: str,
              precision: str) -> tuple[_Run, PairDataset]:
    """This rank's run (supernet on its device, optimizer and scaler restored) and the training pairs."""
    from tracking import distributed
    from tracking.checkpoint import read_payload
    from tracking.devices import grad_scaler, resolve_precision

    d = distributed.from_env(device)
    dev = torch.device(distributed.local_device(device, d))
    precision = resolve_precision(precision, dev)
    supernet, cfg, meta = _resume_or_start(out, cfg, resume, overwrite)
    run = _Run(cfg, out, Path(data_dir), supernet, d, dev, precision, int(meta.get("iteration", 0)),
               list(meta.get("history", [])), torch.channels_last if cfg.channels_last else torch.contiguous_format,
               torch.float64 if precision == "fp64" else None)
    check_shards(cfg.batch_size, d.world)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    elif d.world > 1 and dev.type == "cpu":  # N processes sharing the cores, not N x cores threads
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", d.world))))
    supernet.to(device=dev, memory_format=run.fmt)
    if run.wide is not None:
        supernet.to(run.wide)
        if run.start:  # the checkpoint's fp64 weights, not load_supernet's fp32 copy of them
            supernet.load_state_dict(read_payload(out)["state_dict"])
    if d.world > 1:
        distributed.global_batchnorm(supernet, dev)
    data = read_dataset(data_dir, on_error="skip")
    if len(data) == 0:
        raise ValueError(f"{data_dir}: no usable sequences ({len(data.issues)} issues; run `lutnas data check`)")
    pairs = PairDataset(data, cfg.total_iters * cfg.batch_size, seed=cfg.seed, config=cfg.pair_config())
    run.opt = make_optimizer(supernet.parameters(), cfg)
    if meta.get("optimizer") is not None:
        run.opt.load_state_dict(meta["optimizer"])
    run.scaler = grad_scaler(dev, precision)
    if run.scaler is not None and meta.get("grad_scaler") is not None:
        run.scaler.load_state_dict(meta["grad_scaler"])
    run.focus = Architecture.from_string(cfg.focus_arch) if cfg.focus_arch else None
    if run.focus is not None:
        run.focus.validate(supernet.space)
    return run, pairs


def _loop(run: _Run, pairs: PairDataset, end: int, progress: Progress | None, time_limit_s: float | None,
          t0: float) -> int:
    """Iterations ``run.start .. end-1``: a step each, reported; a checkpoint per epoch (and every
    ``checkpoint_every``); an early stop once ``time_limit_s`` has passed. Returns where it stopped."""
    cfg, d = run.cfg, run.d
    cuda = run.dev.type == "cuda"  # there, DataLoader workers crop into pinned memory
    batches = _batches(pairs, cfg, run.start, end, d, workers=cfg.workers or (2 if cuda else 0), pin=cuda)
    running = None
    if progress:
        progress("train", run.start, cfg.total_iters, note=f"epoch {run.start // cfg.iters_per_epoch + 1}/{cfg.epochs}")
    for it, batch in zip(range(run.start, end), batches, strict=False):
        lv, lcv, lrv = _step(run, it, batch)
        run.history.append([it, lv, lcv, lrv])
        running = lv if running is None else 0.95 * running + 0.05 * lv
        done = it + 1
        if progress:
            progress("train", done, cfg.total_iters, note=f"epoch {min(done // cfg.iters_per_epoch + 1, cfg.epochs)}/"
                     f"{cfg.epochs} loss {running:.3f} (cls {lcv:.3f} reg {lrv:.3f})")
        if done % cfg.iters_per_epoch == 0 or (cfg.checkpoint_every and done % cfg.checkpoint_every == 0):
            _save(run, done)
        if time_limit_s is not None and done < end:
            # rank 0's clock decides for all, or a rank would wait forever for the others
            over = float(d.main and time.perf_counter() - t0 > time_limit_s)
            if d.sum(torch.tensor([over], device=run.dev)).item() > 0:
                return done
    return end


def _step(run: _Run, it: int, batch: dict[str, Tensor]) -> tuple[float, float, float]:
    """Global iteration ``it`` on its path; returns the loss, cls and reg losses summed over ranks."""
    from tracking.devices import autocast

    cfg, opt, scaler, fmt = run.cfg, run.opt, run.scaler, run.fmt
    arch = path_for_iteration(cfg.seed, it, run.supernet.space, run.focus, cfg.focus_prob, cfg.subspace)
    for g in opt.param_groups:
        g["lr"] = lr_at(cfg, it)
    batch = {k: v.to(run.dev, run.wide if run.wide is not None and v.is_floating_point() else None, non_blocking=True)
             for k, v in batch.items()}
    with autocast(run.dev, run.precision):
        cls, reg = run.supernet(batch["template"].contiguous(memory_format=fmt),
                                batch["search"].contiguous(memory_format=fmt), arch)
    if run.precision in ("bf16", "fp16"):  # losses (logs, divisions) in fp32
        cls, reg = cls.float(), reg.float()
    loss, lc, lreg = tracking_loss(cls, reg, batch, cfg, run.d)
    opt.zero_grad(set_to_none=True)
    (scaler.scale(loss) if scaler is not None else loss).backward()
    # the path's parameters: the same set on every rank, since all run the same path
    params = [p for p in run.supernet.parameters() if p.grad is not None]
    run.d.sum_grads(params)
    if scaler is not None:
        scaler.unscale_(opt)
    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
    if scaler is not None:
        scaler.step(opt)
        scaler.update()
    else:
        opt.step()
    lv, lcv, lrv = run.d.sum(torch.stack([loss, lc, lreg]).detach()).tolist()
    return lv, lcv, lrv


def _save(run: _Run, it: int) -> None:
    """Checkpoint at global iteration ``it`` (rank 0 writes; the others return)."""
    from tracking.checkpoint import save_checkpoint

    if not run.d.main:
        return
    cfg = run.cfg
    meta = {"space": run.supernet.space.to_dict(), "config": cfg.model_dump(), "epoch": it // cfg.iters_per_epoch,
            "iteration": it, "optimizer": run.opt.state_dict(), "history": run.history,
            "data": str(run.data_dir.resolve())}
    if cfg.tracker is not None:  # read by tune.tracker_config_from_meta, as a tuned setting is
        meta["tracker"] = {"config": cfg.tracker, "source": "training recipe"}
    if run.scaler is not None:
        meta["grad_scaler"] = run.scaler.state_dict()
    run.out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(run.out, run.supernet, meta)


def _summary(run: _Run, end: int, seconds: float, cpu_seconds: float) -> dict[str, Any]:
    """What ``train_supernet`` returns; ``cpu_seconds`` counts all threads (on a shared machine,
    what the run really cost)."""
    last = run.history[-min(len(run.history), 20):]
    iters = end - run.start
    return {
        "checkpoint": str(run.out),
        "iterations": iters,
        "total_iterations": end,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "iters_per_s": iters / seconds if seconds > 0 and end > run.start else None,
        "stopped_early": end < run.cfg.total_iters,
        "loss": float(np.mean([h[1] for h in last])) if last else None,
        "cls_loss": float(np.mean([h[2] for h in last])) if last else None,
        "reg_loss": float(np.mean([h[3] for h in last])) if last else None,
        "config": run.cfg.model_dump(),
        "device": str(run.dev),
        "precision": run.precision,
        "nproc": run.d.world,
    }
