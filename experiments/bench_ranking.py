"""The one-shot premise, measured: does the supernet rank architectures as stand-alone training does?

Architectures: LightTrack-Mobile, the smallest and the largest of the space (by MACs), the rest
sampled uniformly (seeded). Each is trained stand-alone from scratch with the training recipe
(``tracking.train.recipe_config`` with ``focus_arch`` = that architecture and ``focus_prob=1``:
every iteration trains that one path; same data, seed and iteration budget for all) and scored on
held-out synthetic sequences with its own BN statistics: the ground truth. Against it, the
scores the same architectures inherit from a supernet trained with the recipe on the same data
(``tracking.validate.ValidationScorer`` in the search's default ``pairs`` and ``sequences``
protocols, and the levers), compared by Kendall tau-b and Spearman rho with seeded bootstrap 90%
intervals over architectures. Then the noise floor: the spread of a candidate's supernet score
over BN-recalibration seeds and over validation subsets, against the spread across architectures.

    python experiments/bench_ranking.py --archs 10 --iters 200 --jobs 2 --threads 1
    python experiments/bench_ranking.py ... --protocols pairs-bn8,sequences-100   # levers, same work folder
    python experiments/bench_ranking.py ... --report-only                         # table from what is done

Everything lives under ``--work`` (default ``runs/ranking``): the data (``tracking.data.synth``,
made when missing: training 60 x 100 frames seed 1, held out 20 x 100 seed 2), checkpoints and
one JSON per finished step, so a rerun skips what is done and an interrupted training resumes
from its last checkpoint (keep the same arguments). Output: experiments/results/bench_ranking/DATE.json
(every figure, the arguments off their defaults as its variant) and .txt (what is printed).
``--truth-from`` takes such a JSON (or one of the older files kept beside them).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import multiprocessing
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tracking.flops import count_flops_params
from tracking.space import Architecture, SearchSpace, from_genes, lighttrack_mobile, sample_many
from tracking.train import MOBILE_FOCUS

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: benchmarks.harness
from benchmarks import harness  # noqa: E402 - a script folder, not an installed package

# Scoring protocols on a supernet. "pairs" and "sequences" are what the search uses by default
# (search/cli.py, server/settings.py: 256 pairs, BN 2 x 32; sequences 20 x 50 frames); the rest
# are levers. "source": which supernet (SOURCES).
PROTOCOLS: dict[str, dict[str, Any]] = {
    "pairs": {"mode": "pairs", "n_pairs": 256, "bn_batches": 2},
    "sequences": {"mode": "sequences", "max_sequences": 20, "max_frames": 50, "bn_batches": 2},
    "pairs-bn8": {"mode": "pairs", "n_pairs": 256, "bn_batches": 8},
    "sequences-bn8": {"mode": "sequences", "max_sequences": 20, "max_frames": 50, "bn_batches": 8},
    "pairs-1024": {"mode": "pairs", "n_pairs": 1024, "bn_batches": 2},
    "sequences-100": {"mode": "sequences", "max_sequences": 20, "max_frames": 100, "bn_batches": 2},
    "pairs-half": {"mode": "pairs", "n_pairs": 256, "bn_batches": 2, "source": "half"},
    "sequences-half": {"mode": "sequences", "max_sequences": 20, "max_frames": 50, "bn_batches": 2,
                       "source": "half"},
    "pairs-uniform": {"mode": "pairs", "n_pairs": 256, "bn_batches": 2, "source": "uniform"},
    "sequences-uniform": {"mode": "sequences", "max_sequences": 20, "max_frames": 50, "bn_batches": 2,
                          "source": "uniform"},
    # the ranking study's held-out set (60 sequences): the supernet scored on what the truth is scored on
    "sequences-uniform-60": {"mode": "sequences", "max_sequences": 60, "max_frames": 50, "bn_batches": 2,
                             "source": "uniform"},
    # the 120-sequence held-out set (a ground truth whose halves are 60 sequences each)
    "sequences-uniform-120": {"mode": "sequences", "max_sequences": 120, "max_frames": 50, "bn_batches": 2,
                              "source": "uniform"},
    "pairs-uniform-bn8": {"mode": "pairs", "n_pairs": 256, "bn_batches": 8, "source": "uniform"},
    "pairs-uniform-1024": {"mode": "pairs", "n_pairs": 1024, "bn_batches": 2, "source": "uniform"},
}
# Few-shot lever: the uniform supernet split on the output stage into two sub-supernets, each
# fine-tuned (--fewshot-iters) on paths whose output lies in its stage; a candidate is scored on
# the sub-supernet of its own output stage (pairs protocol).
PROTOCOLS["pairs-fewshot"] = {"mode": "pairs", "n_pairs": 256, "bn_batches": 2, "source": "fewshot"}
FEWSHOT_GENE = "output"


def fewshot_groups(space: SearchSpace) -> dict[str, list[int]]:
    """Output-position gene values per output stage: ``{"stage2": [0, 1, 2, 3], ...}``."""
    groups: dict[str, list[int]] = {}
    for v, (stage, _) in enumerate(space.output_positions):
        groups.setdefault(f"stage{stage}", []).append(v)
    return groups


# a uniform-only study's headline protocols (scored as soon as the supernet is trained)
MAIN_UNIFORM = ("pairs-uniform", "sequences-uniform-60", "sequences-uniform-120")
# Supernets: the recipe's; its state halfway through (a shorter training); the recipe without the
# extra share of Mobile's path (plain uniform single-path sampling: fair to every architecture).
# ('recipe' keeps its name from the studies that found the bias: it is now tracking.train's "mobile"
# recipe, and the ranking recipe is 'uniform'.)
SOURCES: dict[str, dict[str, Any]] = {"recipe": MOBILE_FOCUS, "half": MOBILE_FOCUS, "uniform": {"focus_prob": 0.0}}


# -- architectures ----------------------------------------------------------------------------

def extreme(space: SearchSpace, largest: bool) -> Architecture:
    """Smallest (every block k3 e4, earliest output, 128-wide heads of one 3x3 layer) or largest
    (k7 e6, latest output, 256-wide heads of eight 5x5 layers) architecture of ``space``."""
    genes: list[int] = []
    for n in space.stage_blocks:
        genes += [space.n_mbconv_choices - 1 if largest else 0] * n
    genes.append(len(space.output_positions) - 1 if largest else 0)
    for _ in range(2):
        genes.append(len(space.head_widths) - 1 if largest else 0)
        genes += [1] * space.head_layers if largest else [0] + [2] * (space.head_layers - 1)
    return from_genes(genes, space)


def study_archs(n: int, seed: int, space: SearchSpace) -> list[dict[str, Any]]:
    """Mobile, smallest, largest, then seeded uniform samples (distinct networks): ``n`` in all."""
    chosen = [("mobile", lighttrack_mobile()), ("smallest", extreme(space, False)),
              ("largest", extreme(space, True))][:n]
    seen = {a.canonical_id() for _, a in chosen}
    for a in sample_many(10 * n + 10, seed=seed, space=space):
        if len(chosen) >= n:
            break
        if a.canonical_id() not in seen:
            seen.add(a.canonical_id())
            chosen.append((f"random{len(chosen) - 2}", a))
    rows = []
    for i, (name, a) in enumerate(chosen):
        macs, params = count_flops_params(a, space)
        rows.append({"index": i, "name": name, "arch": a.to_string(), "mflops": macs / 1e6, "mparams": params / 1e6})
    return rows


# -- worker tasks (child processes; each writes its own JSON) ----------------------------------

def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(path)


def _list(data: str) -> list[str]:
    return (Path(data) / "list.txt").read_text().split()


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def task_train(out: str, data: str, config: dict[str, Any], summary: str, half_copy: str | None = None) -> None:
    """Train (or resume) one checkpoint; with ``half_copy``, stop halfway, keep a copy there, go on."""
    from tracking.train import TrainConfig, train_supernet

    cfg, outp = TrainConfig(**config), Path(out)
    runs = []
    if half_copy and not Path(half_copy).is_file():
        runs.append(train_supernet(data, outp, cfg, progress=False, resume=outp.is_file(),
                                   overwrite=not outp.is_file(), stop_after=cfg.total_iters // 2))
        shutil.copyfile(outp, half_copy)
    runs.append(train_supernet(data, outp, cfg, progress=False, resume=outp.is_file(), overwrite=not outp.is_file()))
    keys = ("iterations", "seconds", "cpu_seconds")
    res = {k: sum(r.get(k) or 0 for r in runs) for k in keys}
    res.update({k: runs[-1].get(k) for k in ("total_iterations", "loss", "cls_loss", "reg_loss")})
    res["s_per_iter"] = res["seconds"] / res["iterations"] if res["iterations"] else None
    _write_json(Path(summary), res)


def _scorer(net: Any, val: str, train: str, proto: dict[str, Any], tracker: dict[str, Any] | None,
            seed: int = 0) -> Any:
    from tracking.tracker import TrackerConfig
    from tracking.validate import ValidationScorer

    kw = {k: v for k, v in proto.items() if k not in ("mode", "source")}
    return ValidationScorer(net, val, proto["mode"], bn_data_dir=train, seed=seed,
                            tracker_config=TrackerConfig(**tracker) if tracker else None, **kw)


def _summary(res: dict[str, Any], scorer: Any = None) -> dict[str, Any]:
    keys = ("score", "score_se", "mean_iou", "ao", "sr50", "sr75", "static_score", "seconds")
    out = {k: res[k] for k in keys if k in res}
    if scorer is not None and scorer.mode == "sequences":  # per-sequence boxes: validation-subset noise
        out["predictions"] = {k: v.tolist() for k, v in scorer.predictions.items()}
    return out


def task_score_standalone(ckpt: str, val: str, train: str, protos: dict[str, dict[str, Any]],
                          tracker: dict[str, Any] | None, out: str, keep: bool) -> None:
    """A stand-alone network on the held-out data, with its own BN statistics (no recalibration)."""
    from tracking.checkpoint import load_supernet
    from tracking.space import Architecture

    net, meta = load_supernet(ckpt)
    if meta["config"]["focus_prob"] != 1.0:
        raise ValueError(f"{ckpt}: not a stand-alone training (focus_prob {meta['config']['focus_prob']})")
    arch = Architecture.from_string(meta["config"]["focus_arch"])
    res: dict[str, Any] = {"arch": arch.to_string(), "iterations": meta["iteration"],
                           "loss_last50": float(np.mean([h[1] for h in meta["history"][-50:]]))}
    for name, proto in protos.items():
        sc = _scorer(net, val, train, {**proto, "bn_batches": 0}, tracker)
        res[name] = _summary(sc.score(arch), sc)
    _write_json(Path(out), res)
    if not keep:
        Path(ckpt).unlink()


def task_score_supernet(ckpt: str, val: str, train: str, archs: list[str], proto: dict[str, Any],
                        tracker: dict[str, Any] | None, outs: list[str]) -> None:
    """Supernet-inherited scores of ``archs`` under one protocol (one JSON per architecture)."""
    from tracking.checkpoint import load_supernet
    from tracking.space import Architecture

    net, _ = load_supernet(ckpt)
    scorer = _scorer(net, val, train, proto, tracker)
    for a, out in zip(archs, outs, strict=True):
        if not Path(out).is_file():
            _write_json(Path(out), _summary(scorer.score(Architecture.from_string(a)), scorer))


def task_noise(ckpt: str, val: str, train: str, arch: str, proto: dict[str, Any], tracker: dict[str, Any] | None,
               seeds: list[int], out: str) -> None:
    """One candidate's supernet score with BN-recalibration pairs drawn from other seeds (validation
    data fixed) and, in pairs mode, on validation pairs drawn from other seeds (BN pairs fixed)."""
    from tracking.checkpoint import load_supernet
    from tracking.space import Architecture

    net, _ = load_supernet(ckpt)
    a = Architecture.from_string(arch)
    base = _scorer(net, val, train, proto, tracker, seed=0)
    bn0 = base.bn_batches
    res: dict[str, Any] = {"bn": {}, "val": {}}
    for s in seeds:  # a scorer draws its BN pairs from seed + 1: borrow those of seed s
        base.bn_batches = _scorer(net, val, train, {**proto, "mode": "pairs", "n_pairs": 1}, None, seed=s).bn_batches
        res["bn"][str(s)] = _summary(base.score(a), base)
    if proto["mode"] == "pairs":
        for s in seeds:
            sc = _scorer(net, val, train, {**proto, "bn_batches": 0}, tracker, seed=s)
            sc.bn_batches = bn0
            res["val"][str(s)] = _summary(sc.score(a))
    _write_json(Path(out), res)


# -- the scheduler ------------------------------------------------------------------------------

class Scheduler:
    """Runs tasks on ``jobs`` processes, lowest priority number first; a finished task's ``then``
    may add tasks (supernet -> its scoring)."""

    def __init__(self, jobs: int, threads: int, log: Callable[[str], None]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.pool = cf.ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_init_worker, initargs=(threads,))
        self.jobs, self.log = jobs, log
        self.ready: list[tuple[float, int, str, Callable[..., Any], tuple, Callable[[], None] | None]] = []
        self.added = 0

    def add(self, prio: float, name: str, fn: Callable[..., Any], args: tuple,
            then: Callable[[], None] | None = None) -> None:
        self.added += 1  # ties run in the order added
        self.ready.append((prio, self.added, name, fn, args, then))

    def run(self, waiting: Callable[[], bool] | None = None) -> None:
        """``waiting()``: polled every 15 s; True while something outside may still add tasks."""
        running: dict[cf.Future, tuple[str, float, Callable[[], None] | None]] = {}
        while True:
            still = waiting is not None and waiting()  # called every round (it may add tasks)
            if not (self.ready or running or still):
                break
            self.ready.sort(key=lambda t: (t[0], t[1]))
            while self.ready and len(running) < self.jobs:
                _, _, name, fn, args, then = self.ready.pop(0)
                self.log(f"start {name}")
                running[self.pool.submit(fn, *args)] = (name, time.perf_counter(), then)
            if not running:
                time.sleep(15)
                continue
            finished, _ = cf.wait(running, timeout=15 if waiting else None, return_when=cf.FIRST_COMPLETED)
            for f in finished:
                name, t0, then = running.pop(f)
                f.result()  # a failed task stops the study; what finished stays on disk
                self.log(f"done  {name} ({time.perf_counter() - t0:.0f} s)")
                if then is not None:
                    then()
        self.pool.shutdown()


# -- statistics ---------------------------------------------------------------------------------

def rank_agreement(truth: np.ndarray, score: np.ndarray, seed: int, resamples: int = 2000) -> dict[str, Any]:
    """Kendall tau-b and Spearman rho with percentile bootstrap 90% intervals (architectures drawn
    with replacement, seeded)."""
    import warnings

    from scipy.stats import bootstrap, kendalltau, spearmanr

    out: dict[str, Any] = {"n": int(len(truth))}
    for name, fn in (("kendall", kendalltau), ("spearman", spearmanr)):
        def stat(x: np.ndarray, y: np.ndarray, fn: Any = fn) -> float:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                v = fn(x, y).statistic
            return 0.0 if np.isnan(v) else float(v)  # a resample with one value on a side: no evidence

        ci = bootstrap((truth, score), stat, paired=True, vectorized=False, n_resamples=resamples,
                       confidence_level=0.9, method="percentile", random_state=np.random.default_rng(seed))
        out[name] = {"value": stat(truth, score), "ci90": [float(ci.confidence_interval.low),
                                                           float(ci.confidence_interval.high)]}
    return out


def top_k_overlap(truth: np.ndarray, score: np.ndarray, k: int) -> dict[str, Any]:
    """Does the supernet's top ``k`` hold stand-alone's best, and how many of stand-alone's top ``k``
    does it hold; beside what a random top ``k`` gives (k/n and k*k/n)."""
    n = len(truth)
    top_s, top_t = set(np.argsort(-score)[:k].tolist()), set(np.argsort(-truth)[:k].tolist())
    return {"k": k, "n": n, "holds_best": int(np.argmax(truth)) in top_s, "overlap": len(top_s & top_t),
            "chance_best": min(1.0, k / n), "chance_overlap": k * k / n}


def subset_scores(predictions: dict[str, list], val: str, k: int, draws: int, seed: int) -> list[float]:
    """(AO + SR@0.5) / 2 over ``draws`` seeded random subsets of ``k`` of the tracked sequences."""
    from tracking.data.got10k import read_dataset
    from tracking.metrics import got10k_scores, sequence_ious
    from tracking.validate import toolkit_frames

    seqs = {s.name: s for s in read_dataset(val, on_error="skip").sequences}
    ious = []
    for name, pred in predictions.items():
        p = np.asarray(pred)
        ious.append(sequence_ious(p, seqs[name].boxes[:len(p)], **toolkit_frames(seqs[name], len(p))))
    rng = np.random.default_rng(seed)
    return [float(got10k_scores([ious[i] for i in rng.choice(len(ious), k, replace=False)])["score"])
            for _ in range(draws)]


def split_half_tau(predictions: list[dict[str, list]], val: str, draws: int, seed: int) -> list[float]:
    """Kendall tau between the architectures' scores on two random halves of the sequences (the
    same halves for every architecture), ``draws`` seeded splits: how reproducible a ranking on
    half of these sequences is; the full set's is higher (Spearman-Brown)."""
    from scipy.stats import kendalltau

    from tracking.data.got10k import read_dataset
    from tracking.metrics import got10k_scores, sequence_ious
    from tracking.validate import toolkit_frames

    seqs = {q.name: q for q in read_dataset(val, on_error="skip").sequences}
    names = sorted(predictions[0])
    ious = [[sequence_ious(np.asarray(pr[n]), seqs[n].boxes[:len(pr[n])], **toolkit_frames(seqs[n], len(pr[n])))
             for n in names] for pr in predictions]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(draws):
        perm = rng.permutation(len(names))
        a, b = perm[:len(names) // 2], perm[len(names) // 2:]
        sa = [got10k_scores([x[j] for j in a])["score"] for x in ious]
        sb = [got10k_scores([x[j] for j in b])["score"] for x in ious]
        t = float(kendalltau(sa, sb).statistic)
        out.append(0.0 if np.isnan(t) else t)
    return out


# -- the study ----------------------------------------------------------------------------------

class Study:
    """Paths, configurations and the report of one work folder."""

    def __init__(self, args: argparse.Namespace) -> None:
        from tracking.train import RECIPE, recipe_config

        self.args, self.work = args, args.work
        for d in ("standalone", "supernet", "noise"):
            (self.work / d).mkdir(parents=True, exist_ok=True)
        self.train = str(args.train_data or self.work / "data" / "train")
        self.val = str(args.val_data or self.work / "data" / "val")
        common = {"seed": args.seed, "threads": args.threads, "checkpoint_every": 50, **json.loads(args.set)}
        sup_iters = {"iters_per_epoch": args.supernet_iters} if args.supernet_iters else {}
        self.sup_cfg = {s: recipe_config(**{**common, **sup_iters, **over}).model_dump() for s, over in SOURCES.items()}
        self.alone_cfg = recipe_config(**{**common, "iters_per_epoch": args.iters, "focus_prob": 1.0}).model_dump()
        self.space = recipe_config(**common).search_space()
        self.archs = study_archs(args.archs, args.seed, self.space)
        if args.tracker == "recipe":
            self.tracker = RECIPE.get("tracker")
        else:
            self.tracker = None if args.tracker == "default" else json.loads(args.tracker)
        # --runtime: what runs the tracking loop of every sequences protocol (pairs stay batched torch)
        run_on = lambda proto: {**proto, "runtime": args.runtime} if proto["mode"] == "sequences" else proto  # noqa: E731
        self.protos = {p: run_on(PROTOCOLS[p]) for p in args.protocols.split(",")}
        self.truth_protos = {"sequences": run_on({"mode": "sequences", "max_sequences": args.truth_sequences,
                                                  "max_frames": args.truth_frames}),
                             "pairs": {"mode": "pairs", "n_pairs": args.truth_pairs}}
        if not args.truth_pairs:
            del self.truth_protos["pairs"]

    def ckpt(self, source: str) -> Path:
        return self.work / "supernet" / ("supernet-half.pt" if source == "half" else f"supernet-{source}.pt")

    def alone(self, i: int, ext: str = ".json") -> Path:
        return self.work / "standalone" / f"{i:02d}{ext}"

    def sup(self, p: str, i: int) -> Path:
        return self.work / "supernet" / f"{p}-{i:02d}.json"

    def noise(self, i: int, p: str) -> Path:
        return self.work / "noise" / f"{i:02d}-{p}.json"

    # -- running -----------------------------------------------------------------------------
    def run(self) -> None:
        from tracking.data.synth import generate_synthetic

        args = self.args
        for d, n, s in ((self.train, 60, 1), (self.val, args.val_sequences, 2)):
            if not (Path(d) / "list.txt").is_file():
                if args.train_data or args.val_data:
                    raise SystemExit(f"{d}: no list.txt")
                generate_synthetic(d, n, 100, seed=s, progress=False)
        if args.truth_from:
            self.seed_truth(args.truth_from)
        t0 = time.perf_counter()
        sched = Scheduler(args.jobs, args.threads, lambda m: print(f"[{time.perf_counter() - t0:6.0f} s] {m}",
                                                                   flush=True))
        sources = {p.get("source", "recipe") for p in self.protos.values()}
        if "fewshot" in sources:  # split from the uniform supernet
            sources = (sources - {"fewshot"}) | {"uniform"}
        if args.noise_archs:
            sources.add("recipe")
        ext: dict[str, Any] = {"mtime": None}

        def score(source: str) -> None:
            lever = 0 if source == "recipe" else 2
            for p, proto in self.protos.items():
                if proto.get("source", "recipe") != source and not (source == "recipe" and proto.get("source") == "half"):
                    continue
                if not self.ckpt(proto.get("source", "recipe")).is_file():
                    print(f"skipping protocol {p}: no {self.ckpt(proto.get('source', 'recipe'))}", flush=True)
                    continue
                # the main protocols before the remaining stand-alone work (balanced partial results); noise
                # floor 3; levers after
                main = p in ("pairs", "sequences") or ("recipe" not in sources and p in MAIN_UNIFORM)
                prio = 0.5 if main else 3.5 + lever
                todo = [i for i in range(len(self.archs)) if not self.sup(p, i).is_file()]
                for c in range(args.jobs):  # one chunk per process
                    idx = todo[c::args.jobs]
                    if idx:
                        sched.add(prio, f"supernet {p} x {len(idx)}", task_score_supernet,
                                  (str(self.ckpt(proto.get("source", "recipe"))), self.val, self.train,
                                   [self.archs[i]["arch"] for i in idx], proto, self.tracker,
                                   [str(self.sup(p, i)) for i in idx]))
            if source == "uniform" and "pairs-fewshot" in self.protos:
                self.add_fewshot(sched)
            if source == "recipe":
                for i in range(min(args.noise_archs, len(self.archs))):
                    for p in ("pairs", "sequences"):
                        if not self.noise(i, p).is_file():
                            sched.add(3, f"noise {p} {self.archs[i]['name']}", task_noise,
                                      (str(self.ckpt("recipe")), self.val, self.train, self.archs[i]["arch"],
                                       PROTOCOLS[p], self.tracker, list(range(1, args.noise_seeds)),
                                       str(self.noise(i, p))))

        def external() -> bool:
            """Copy ``--supernet`` once it holds the recipe's full run (and its halfway state when it
            passes through it); True while still waiting for it."""
            summary = self.work / "supernet" / "train-recipe.json"
            path = Path(args.supernet)
            if summary.is_file():
                return False
            mtime = path.stat().st_mtime if path.is_file() else None
            if mtime is None or mtime == ext["mtime"]:
                return True
            ext["mtime"] = mtime
            import torch

            meta = torch.load(path, map_location="cpu", weights_only=True)["meta"]
            cfg, want = meta["config"], self.sup_cfg["recipe"]
            keys = ("epochs", "iters_per_epoch", "batch_size", "optimizer", "lr", "warmup_iters", "final_lr_ratio",
                    "focus_arch", "focus_prob", "size_weight", "pairs", "seed", "space", "cls_weight", "reg_weight",
                    "weight_decay", "grad_clip", "momentum")
            diff = {k: (cfg.get(k), want.get(k)) for k in keys if cfg.get(k) != want.get(k)}
            if diff:
                raise SystemExit(f"{path}: not the recipe's configuration (found, wanted): {diff}")
            total, it = want["epochs"] * want["iters_per_epoch"], int(meta["iteration"])
            print(f"{path}: iteration {it} of {total}", flush=True)
            if it == total // 2 and "half" in sources and not self.ckpt("half").is_file():
                shutil.copyfile(path, self.ckpt("half"))
            if it < total:
                return True
            shutil.copyfile(path, self.ckpt("recipe"))
            hist = meta.get("history", [])
            _write_json(summary, {"copied_from": str(path), "total_iterations": it,
                                  "loss": float(np.mean([h[1] for h in hist[-20:]])) if hist else None})
            score("recipe")
            return False

        for source in ("recipe", "uniform"):
            if source not in sources:
                continue
            summary = self.work / "supernet" / f"train-{source}.json"
            if summary.is_file():
                score(source)
                continue
            if source == "recipe" and args.supernet:
                continue  # external() copies it when it is complete
            half = str(self.ckpt("half")) if source == "recipe" and "half" in sources else None
            # the study's main supernet first (the recipe's when it is scored, else the uniform one)
            main_source = "recipe" if "recipe" in sources else "uniform"
            sched.add(0 if source == main_source else 4, f"train supernet ({source})", task_train,
                      (str(self.ckpt(source)), self.train, self.sup_cfg[source], str(summary), half),
                      lambda s=source: score(s))
        for i, r in enumerate(self.archs):
            if self.alone(i).is_file() or args.skip_standalone:
                continue
            def score_it(i: int = i) -> None:
                sched.add(1, f"score stand-alone {self.archs[i]['name']}", task_score_standalone,
                          (str(self.alone(i, ".pt")), self.val, self.train, self.truth_protos, self.tracker,
                           str(self.alone(i)), args.keep_checkpoints))

            if self.alone(i, "-train.json").is_file():
                score_it()
            else:
                sched.add(1, f"train stand-alone {r['name']}", task_train,
                          (str(self.alone(i, ".pt")), self.train, {**self.alone_cfg, "focus_arch": r["arch"]},
                           str(self.alone(i, "-train.json"))), score_it)
        print(f"{len(self.archs)} architectures, stand-alone {args.iters} iterations each, supernets {sorted(sources)}; "
              f"{args.jobs} processes x {args.threads} threads", flush=True)
        sched.run(external if args.supernet else None)

    def add_fewshot(self, sched: Scheduler) -> None:
        """Train the few-shot sub-supernets from the uniform one, then score each candidate on the
        sub-supernet of its output stage."""
        args, p = self.args, "pairs-fewshot"
        for g, values in fewshot_groups(self.space).items():
            ckpt = self.work / "supernet" / f"supernet-fewshot-{g}.pt"
            summary = self.work / "supernet" / f"train-fewshot-{g}.json"
            idx = [i for i, r in enumerate(self.archs) if FEWSHOT_GENE == "output" and
                   self.space.output_positions.index(self._out(r["arch"])) in values and not self.sup(p, i).is_file()]

            def then(ckpt: Path = ckpt, idx: list[int] = idx, g: str = g) -> None:
                if idx:
                    sched.add(4.6, f"supernet {p} {g} x {len(idx)}", task_score_supernet,
                              (str(ckpt), self.val, self.train, [self.archs[i]["arch"] for i in idx],
                               PROTOCOLS[p], self.tracker, [str(self.sup(p, i)) for i in idx]))

            if summary.is_file():
                then()
                continue
            cfg = {**self.sup_cfg["uniform"], "iters_per_epoch": args.fewshot_iters,
                   "warmup_iters": min(30, args.fewshot_iters // 5), "init_from": str(self.ckpt("uniform")),
                   "subspace": {FEWSHOT_GENE: values}}
            sched.add(4.5, f"train few-shot sub-supernet {g}", task_train, (str(ckpt), self.train, cfg, str(summary)),
                      then)

    @staticmethod
    def _out(arch: str) -> tuple[int, int]:
        a = Architecture.from_string(arch)
        return (a.out_stage, a.out_block)

    def same_supernet(self) -> bool:
        """Whether this run's supernet is the recipe's default one (no --set, no --supernet-iters)."""
        return not json.loads(self.args.set) and not self.args.supernet_iters

    def seed_truth(self, path: Path) -> None:
        """Take the stand-alone ground truth of an earlier study's JSON (same architectures, same
        held-out data): the levers of a new supernet are scored against it without retraining the
        stand-alone networks. Its per-sequence boxes are not in that JSON, so the ground truth's
        split-half figure is the earlier run's."""
        prev = json.loads(Path(path).read_text())
        if [a["arch"] for a in prev["archs"]] != [a["arch"] for a in self.archs]:
            raise SystemExit(f"{path}: not the same architectures (seed, --archs, space)")
        for i, row in enumerate(prev["archs"]):
            if row.get("standalone") and not self.alone(i).is_file():
                _write_json(self.alone(i), {**row["standalone"], "from": str(path)})
                if row.get("standalone_train"):
                    _write_json(self.alone(i, "-train.json"), row["standalone_train"])
            # the supernet scores it measured, for the protocols asked again, unless --set or
            # --supernet-iters changes the supernet (another seed, recipe, length): then they are this run's
            for p, res in (row.get("supernet") or {}).items() if self.same_supernet() else ():
                if p in self.protos and res and not self.sup(p, i).is_file():
                    _write_json(self.sup(p, i), {**res, "from": str(path)})
        for source, summary in (prev.get("supernet_training") or {}).items() if self.same_supernet() else ():
            target = self.work / "supernet" / f"train-{source}.json"
            if summary and not target.is_file() and any(q.get("source", "recipe") in (source, "half")
                                                        for q in self.protos.values()):
                _write_json(target, {**summary, "from": str(path)})

    # -- the report --------------------------------------------------------------------------
    def report(self, variant: dict[str, Any]) -> None:
        args, lines = self.args, []

        def say(msg: str = "") -> None:
            print(msg, flush=True)
            lines.append(msg)

        alone = [_read_json(self.alone(i)) for i in range(len(self.archs))]
        alone_train = [_read_json(self.alone(i, "-train.json")) for i in range(len(self.archs))]
        sup = {p: [_read_json(self.sup(p, i)) for i in range(len(self.archs))] for p in self.protos}
        trains = {s: _read_json(self.work / "supernet" / f"train-{s}.json")
                  for s in ("recipe", "uniform", *(f"fewshot-{g}" for g in fewshot_groups(self.space)))}
        done = [i for i in range(len(self.archs)) if alone[i] is not None]
        partial = len(done) < len(self.archs)
        out: dict[str, Any] = {
            "settings": {**{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                         "train_data": self.train, "val_data": self.val, "supernet_configs": self.sup_cfg,
                         "standalone_config": self.alone_cfg, "protocols": self.protos,
                         "truth_protocols": self.truth_protos, "tracker": self.tracker},
            "supernet_training": trains, "archs": [], "agreement": {}, "noise": {}, "partial": partial}
        say(f"# bench_ranking {time.strftime('%Y-%m-%d %H:%M')} UTC: {len(self.archs)} architectures "
            f"({len(done)} with a stand-alone score{'; PARTIAL' if partial else ''}), seed {args.seed}")
        n_train, n_val = (len(_list(d)) for d in (self.train, self.val))
        say(f"# data: train {self.train} ({n_train} sequences), held out {self.val} ({n_val} sequences, a synth "
            "seed never trained on)")
        cfg = {k: v for k, v in self.alone_cfg.items() if k not in ("focus_arch", "tracker", "threads")}
        say(f"# stand-alone: {args.iters} iterations, the recipe with focus_prob 1: {json.dumps(cfg, sort_keys=True)}")
        for s, t in trains.items():
            if t and s.startswith("fewshot-"):
                say(f"# few-shot sub-supernet '{s}': the uniform supernet fine-tuned {t.get('total_iterations')} "
                    f"iterations on paths with the output in {s[8:]}")
            elif t:
                c = self.sup_cfg[s]
                say(f"# supernet '{s}': focus_prob {c['focus_prob']}, {t.get('total_iterations')} iterations"
                    f"{' (copied: ' + t['copied_from'] + ')' if 'copied_from' in t else ''}"
                    + (f", {t['s_per_iter']:.2f} s/iteration" if t.get("s_per_iter") else ""))
        say(f"# tracker settings (every tracker): {self.tracker}; sequences tracked on {args.runtime}")
        tp = self.truth_protos["sequences"]
        say(f"# ground truth: stand-alone (AO + SR@0.5) / 2 on {tp['max_sequences']} held-out sequences x "
            f"{tp['max_frames']} frames, the network's own BN statistics")
        carried = {a.get("from") for a in alone if a and a.get("from")}
        if carried:
            say(f"# ground truth carried over from {', '.join(sorted(carried))} (--truth-from: the same networks' "
                "scores, not retrained)")
        say()
        say(f"{'#':>2} {'name':9} {'MMACs':>5} {'s/it':>4} {'loss':>5} {'alone':>6} {'±se':>5} {'a.pairs':>7} "
            + " ".join(f"{p[:14]:>14}" for p in self.protos))
        for i, r in enumerate(self.archs):
            a, at = alone[i], alone_train[i]
            row = {**r, "standalone": None if a is None else {k: v for k, v in a.items()},
                   "standalone_train": at,
                   "supernet": {p: None if sup[p][i] is None else {k: v for k, v in sup[p][i].items()
                                                                   if k != "predictions"} for p in self.protos}}
            if a is not None:
                for k in ("sequences", "pairs")[:1 + ("pairs" in a)]:
                    row["standalone"][k] = {x: y for x, y in a[k].items() if x != "predictions"}
            out["archs"].append(row)
            cells = [f"{i:>2} {r['name']:9} {r['mflops']:5.0f}",
                     f"{at['s_per_iter']:4.1f}" if at and at.get("s_per_iter") else f"{'-':>4}",
                     f"{a['loss_last50']:5.2f} {a['sequences']['score']:6.3f} {a['sequences']['score_se']:5.3f} "
                     + (f"{a['pairs']['score']:7.3f}" if "pairs" in a else f"{'-':>7}") if a else f"{'-':>5} {'-':>6} {'-':>5} {'-':>7}"]
            cells += [f"{sup[p][i]['score']:14.3f}" if sup[p][i] else f"{'-':>14}" for p in self.protos]
            say(" ".join(cells))
        say()
        for r in self.archs:
            say(f"  {r['index']:>2} {r['name']:9} {r['arch']}")
        say()
        say("Agreement with the stand-alone ground truth (Kendall tau-b, Spearman rho; bootstrap 90% intervals over")
        say("architectures, 2000 resamples, seeded):")
        for p in self.protos:
            idx = [i for i in done if sup[p][i] is not None]
            if len(idx) < 3:
                say(f"  {p:24} (only {len(idx)} architectures scored)")
                continue
            truth = np.array([alone[i]["sequences"]["score"] for i in idx])
            has_pairs = all("pairs" in alone[i] for i in idx)
            tpairs = np.array([alone[i]["pairs"]["score"] for i in idx]) if has_pairs else None
            s = np.array([sup[p][i]["score"] for i in idx])
            ag = rank_agreement(truth, s, args.seed)
            ag_p = rank_agreement(tpairs, s, args.seed) if has_pairs else None
            # without Mobile, whose path the recipe trains half the time (is the focus what agrees?)
            rest = [j for j, i in enumerate(idx) if self.archs[i]["name"] != "mobile"]
            ag_r = rank_agreement(truth[rest], s[rest], args.seed)
            topk = top_k_overlap(truth, s, 5)
            out["agreement"][p] = {"n": len(idx), "vs_standalone_sequences": ag, "vs_standalone_pairs": ag_p,
                                   "without_mobile": ag_r, "top5": topk}
            k, sp = ag["kendall"], ag["spearman"]
            default = " (search default)" if p == "pairs" else ""
            say(f"  {p + default:24} n={len(idx):<2} tau {k['value']:+.3f} [{k['ci90'][0]:+.2f}, {k['ci90'][1]:+.2f}]  "
                f"rho {sp['value']:+.3f} [{sp['ci90'][0]:+.2f}, {sp['ci90'][1]:+.2f}];  without Mobile tau "
                f"{ag_r['kendall']['value']:+.3f}"
                + (f";  against stand-alone pairs scores tau {ag_p['kendall']['value']:+.3f}" if ag_p else ""))
            say(f"  {'':24} top 5: holds stand-alone's best {'yes' if topk['holds_best'] else 'no'} (chance "
                f"{topk['chance_best']:.2f}), {topk['overlap']} of stand-alone's top 5 (chance {topk['chance_overlap']:.1f})")
        if len(done) >= 3 and all("pairs" in alone[i] for i in done):
            ag = rank_agreement(np.array([alone[i]["sequences"]["score"] for i in done]),
                                np.array([alone[i]["pairs"]["score"] for i in done]), args.seed)
            out["agreement"]["standalone_pairs_vs_sequences"] = ag
            say(f"  stand-alone pairs vs stand-alone sequences: tau {ag['kendall']['value']:+.3f} "
                f"rho {ag['spearman']['value']:+.3f}")
        if len(done) >= 2:
            tv = [alone[i]["sequences"]["score"] for i in done]
            se = [alone[i]["sequences"]["score_se"] for i in done]
            out["truth_spread"] = {"sd": float(np.std(tv, ddof=1)), "range": [min(tv), max(tv)],
                                   "median_se": float(np.median(se))}
            say(f"  ground truth spread: sd {np.std(tv, ddof=1):.4f} across {len(done)} architectures "
                f"({min(tv):.3f}..{max(tv):.3f}); each score's own standard error (over sequences) ~{np.median(se):.3f}")
        # how reproducible each ranking is on these sequences (split halves)
        for name, preds in (("stand-alone (ground truth)", [alone[i]["sequences"]["predictions"] for i in done
                                                            if "predictions" in alone[i]["sequences"]]),
                            ("supernet sequences", [x["predictions"] for x in sup.get("sequences", [])
                                                    if x and "predictions" in x])):
            if len(preds) >= 3:
                taus = split_half_tau(preds, self.val, 50, args.seed)
                out["agreement"][f"split_half_{name.split()[0]}"] = {"n": len(preds), "taus": taus}
                say(f"  split-half reproducibility, {name}: tau between two random halves of the sequences "
                    f"{np.mean(taus):+.3f} (5-95%: {np.percentile(taus, 5):+.2f}..{np.percentile(taus, 95):+.2f}; "
                    f"50 splits, {len(preds)} architectures)")
        mob = alone[0]["sequences"] if alone and alone[0] else None
        if mob:
            say(f"  (on these held-out frames a box that never moves scores {mob['static_score']:.3f})")
        self._noise(sup, say, out)
        harness.write_result("bench_ranking", out, "\n".join(lines), variant, args.results_dir)

    def _noise(self, sup: dict[str, list], say: Callable[[str], None], out: dict[str, Any]) -> None:
        """Spread of one candidate's score over BN draws (where measured) and validation subsets,
        against the spread across architectures. Validation subsets: other draws of 256 pairs
        (pairs), or random halves of the tracked sequences (sequences: the sd over halves drawn
        without replacement is about the standard error of the whole set's score)."""
        args = self.args
        say()
        say(f"Noise floor (supernet 'recipe'; BN: {args.noise_seeds} draws of 2 x 32 training pairs for recalibration, "
            "validation data fixed; validation subsets with BN fixed):")
        for p in ("pairs", "sequences"):
            if p not in self.protos:
                continue
            scored = [x["score"] for x in sup[p] if x]
            if len(scored) < 2:
                continue
            rows = []
            for i, base in enumerate(sup[p]):
                if base is None:
                    continue
                nz = _read_json(self.noise(i, p))
                row: dict[str, Any] = {"arch": self.archs[i]["name"], "score_se": base.get("score_se"),
                                       "bn_scores": None, "val_scores": None}
                if nz is not None:
                    row["bn_scores"] = [base["score"]] + [v["score"] for v in nz["bn"].values()]
                    if p == "pairs":
                        row["val_scores"] = [base["score"]] + [v["score"] for v in nz["val"].values()]
                        row["val_what"] = f"{len(row['val_scores'])} draws of 256 validation pairs"
                if p == "sequences" and "predictions" in base:  # carried over (--truth-from): not kept
                    k = len(base["predictions"]) // 2
                    row["val_scores"] = subset_scores(base["predictions"], self.val, k, 20, args.seed)
                    row["val_what"] = f"20 random halves ({k} of {len(base['predictions'])} sequences)"
                for key in ("bn", "val"):
                    v = row[f"{key}_scores"]
                    row[f"{key}_sd"] = float(np.std(v, ddof=1)) if v else None
                rows.append(row)
            across = float(np.std(scored, ddof=1))
            others = [x["score"] for i, x in enumerate(sup[p]) if x and self.archs[i]["name"] != "mobile"]
            across_o = float(np.std(others, ddof=1)) if len(others) >= 2 else None
            rms = {key: [r[f"{key}_sd"] for r in rows if r[f"{key}_sd"] is not None] for key in ("bn", "val")}
            summ = {key: float(np.sqrt(np.mean(np.square(v)))) if v else None for key, v in rms.items()}
            out["noise"][p] = {"across_archs_sd": across, "across_without_mobile_sd": across_o, "n_archs": len(scored), "bn_sd": summ["bn"],
                               "bn_archs": len(rms["bn"]), "val_sd": summ["val"], "val_archs": len(rms["val"]),
                               "per_arch": rows}
            parts = [f"{key} {summ[key]:.4f} ({summ[key] / across:.2f}x, {len(rms[key])} architectures)"
                     for key in ("bn", "val") if summ[key] is not None]
            say(f"  {p}: sd across the {len(scored)} architectures {across:.4f}"
                + (f" ({across_o:.4f} without Mobile)" if across_o is not None else "") + "; within one candidate: "
                + ("; ".join(parts).replace("bn ", "BN draws ").replace("val ", "validation subsets ") or "-"))
            for r in rows:
                if r["bn_scores"] is None and r["val_scores"] is None:
                    continue
                se = f"{r['score_se']:.4f}" if r["score_se"] is not None else "-"
                bn = (f"BN draws {' '.join(f'{v:.3f}' for v in r['bn_scores'])} (sd {r['bn_sd']:.4f}); "
                      if r["bn_scores"] else "")
                val = f"{r['val_what']}: sd {r['val_sd']:.4f}; " if r["val_scores"] else ""
                say(f"    {r['arch']:9} {bn}{val}its score_se {se}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", type=int, default=10, help="architectures (Mobile, smallest, largest, then random)")
    ap.add_argument("--iters", type=int, default=200, help="stand-alone training iterations per architecture")
    ap.add_argument("--supernet-iters", type=int, default=None, help="supernet iterations (default: the recipe's)")
    ap.add_argument("--supernet", type=Path, default=None,
                    help="use this recipe checkpoint instead of training one: copied once it reaches the recipe's "
                         "iterations (waits while another process trains it; its halfway state is kept too)")
    ap.add_argument("--set", default="{}", help="TrainConfig overrides on the recipe for every training (JSON)")
    ap.add_argument("--seed", type=int, default=0, help="architecture sampling, initialisation, training pairs")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    ap.add_argument("--jobs", type=int, default=2, help="parallel processes")
    ap.add_argument("--work", type=Path, default=Path("runs/ranking"))
    ap.add_argument("--train-data", type=Path, default=None, help="default WORK/data/train (made: 60 x 100, seed 1)")
    ap.add_argument("--val-data", type=Path, default=None, help="default WORK/data/val (made: N x 100, seed 2)")
    ap.add_argument("--val-sequences", type=int, default=20, help="held-out sequences made when WORK/data/val is missing")
    ap.add_argument("--protocols", default="pairs,sequences", help=f"comma-separated, of: {', '.join(PROTOCOLS)}")
    ap.add_argument("--truth-sequences", type=int, default=20, help="held-out sequences scoring stand-alone nets")
    ap.add_argument("--truth-frames", type=int, default=100)
    ap.add_argument("--runtime", choices=("torch", "onnx"), default="torch",
                    help="tracking loop of sequences scoring: eager torch, or the path exported to onnxruntime")
    ap.add_argument("--truth-pairs", type=int, default=256, help="also score stand-alone nets on pairs (0: no)")
    ap.add_argument("--tracker", default="recipe", help="'recipe' (RECIPE['tracker']), 'default' or JSON settings")
    ap.add_argument("--noise-archs", type=int, default=3, help="candidates (the first ones) for the noise floor")
    ap.add_argument("--noise-seeds", type=int, default=3, help="BN draws (and validation-pair draws) per candidate")
    ap.add_argument("--fewshot-iters", type=int, default=150,
                    help="iterations fine-tuning each few-shot sub-supernet (protocol pairs-fewshot)")
    ap.add_argument("--keep-checkpoints", action="store_true", help="keep stand-alone checkpoints once scored")
    ap.add_argument("--skip-standalone", action="store_true",
                    help="run only supernet work (e.g. a lever, beside a run that does the stand-alone part)")
    ap.add_argument("--report-only", action="store_true", help="print the report from what is done; run nothing")
    ap.add_argument("--truth-from", type=Path, default=None,
                    help="take the stand-alone ground truth from an earlier study's JSON (same architectures and data)")
    harness.add_arguments(ap, harness.EXPERIMENTS)
    args = ap.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # the workers inherit it
    study = Study(args)
    if not args.report_only:
        study.run()
    study.report(harness.variant(ap, args))


if __name__ == "__main__":
    main()
