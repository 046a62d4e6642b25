"""What the search asks of the world: accuracy and latency (and FLOPs/params) of architectures.

The search is written against the small protocols below, so the real evaluators (the supernet's
validation score, a measured latency table) and the cheap ones used in benchmarks and tests (the
analytic :class:`SurrogateAccuracy`) are interchangeable.

* :class:`AccuracyEvaluator`: ``evaluate(archs) -> list[float | Score]`` (higher is better). A
  :class:`Score` also carries the score's standard error (the supernet's validation score has one,
  over pairs or sequences; an analytic surrogate has none). Expensive; the search caches it by
  :meth:`Architecture.canonical_id` (see :class:`CachedAccuracy`).
* :class:`LatencyModel`: what ``latency_tables.predict.LatencyPredictor`` offers
  (``predict_batch``, ``predict_genes``); :class:`LatencyEvaluator` wraps one per target.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np
from threadpoolctl import ThreadpoolController

from tracking.space import (
    DEFAULT_SPACE,
    HEAD_KERNELS,
    MBCONV_CHOICES,
    SKIP,
    Architecture,
    SearchSpace,
    backbone_positions,
    enumerate_genes,
    from_genes,
    to_genes,
)


class Score(NamedTuple):
    """An accuracy score and its standard error (None where the evaluator has none)."""

    value: float
    se: float | None = None


def as_score(x: float | Score | tuple[float, float | None]) -> Score:
    """Normalise what an evaluator returned: a plain number (no standard error) or a ``Score``."""
    if isinstance(x, tuple):
        value, se = x
        return Score(float(value), None if se is None else float(se))
    return Score(float(x), None)


@runtime_checkable
class AccuracyEvaluator(Protocol):
    """Scores architectures (higher is better); deterministic for a given evaluator."""

    def evaluate(self, archs: Sequence[Architecture]) -> Sequence[float | Score]: ...


@runtime_checkable
class LatencyModel(Protocol):
    """The part of ``latency_tables.predict.LatencyPredictor`` the search uses."""

    def predict_genes(self, genes: np.ndarray) -> np.ndarray: ...


_CONTROLLER: ThreadpoolController | None = None


def one_blas_thread() -> Any:
    """Context manager limiting BLAS to one thread. Our matrices are small; on a busy machine
    BLAS threads only contend (a 1000x110 ridge fit took 58 ms threaded, 5 ms on one thread).
    The controller is built once: scanning the loaded libraries costs milliseconds."""
    global _CONTROLLER
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="blas")


# -- gene helpers ------------------------------------------------------------------------------

def gene_cardinalities(space: SearchSpace = DEFAULT_SPACE) -> np.ndarray:
    """Number of values of each gene, in ``tracking.space.to_genes`` order."""
    return np.array([n for _, n in enumerate_genes(space)], dtype=np.int64)


def genes_of(archs: Sequence[Architecture], space: SearchSpace = DEFAULT_SPACE) -> np.ndarray:
    if not archs:
        return np.zeros((0, len(gene_cardinalities(space))), dtype=np.int64)
    return np.array([to_genes(a, space) for a in archs], dtype=np.int64)


def archs_of(genes: np.ndarray, space: SearchSpace = DEFAULT_SPACE) -> list[Architecture]:
    return [from_genes(list(g), space) for g in genes]


def active_block_mask(genes: np.ndarray, space: SearchSpace = DEFAULT_SPACE) -> np.ndarray:
    """[n, n_blocks] bool: which backbone blocks run (blocks after the output position do not)."""
    order = [(p.stage, p.block) for p in backbone_positions(space)]
    n_active = np.array([order.index(pos) + 1 for pos in space.output_positions])[genes[:, len(order)]]
    return np.arange(len(order))[None, :] < n_active[:, None]


# -- the fixed analytic accuracy surrogate -----------------------------------------------------

class SurrogateAccuracy:
    """A cheap, deterministic stand-in for the supernet score, for benchmarks and tests.

    A smooth, saturating function of capacity (per-block kernel and expansion weighted by stage,
    depth up to the output position, receptive field, head width x depth), plus a fixed seeded
    pairwise-interaction term over one-hot genes, so the landscape is neither separable nor
    monotone in every gene. Values lie in about 0.25..0.75, like (AO + SR@0.5) / 2. It is *not*
    a model of real tracking accuracy; it only gives searches a realistic-looking landscape.
    """

    _INTERACTION_SEED = 20210428  # fixed: the surrogate is one function, not a family

    def __init__(self, space: SearchSpace = DEFAULT_SPACE) -> None:
        self.space = space
        self.calls = 0
        card = gene_cardinalities(space)
        self._offsets = np.concatenate(([0], np.cumsum(card)[:-1]))
        n_feat = int(card.sum())
        rng = np.random.default_rng(self._INTERACTION_SEED)
        w = rng.normal(0.0, 1.0, (n_feat, n_feat)) * (rng.random((n_feat, n_feat)) < 0.08)
        self._w = np.triu(w, 1)
        positions = backbone_positions(space)
        self._n_blocks = len(positions)
        self._stage_of_block = np.array([p.stage for p in positions])
        kern = np.array([k for k, _ in MBCONV_CHOICES], dtype=float)
        exp_ = np.array([e for _, e in MBCONV_CHOICES], dtype=float)
        self._block_cap = np.log(kern**2 * exp_) / math.log(49 * 6)  # 0.56..1 per choice
        self._kern = kern
        strides = [space.stage_stride_total(s) for s in range(len(space.stage_blocks))]
        self._rf_scale = np.array(strides, dtype=float)[self._stage_of_block]
        self._stage_w = np.array([0.6, 0.9, 1.2, 1.0][: len(space.stage_blocks)])[self._stage_of_block]

    def evaluate(self, archs: Sequence[Architecture]) -> list[float]:
        return self.score_genes(genes_of(archs, self.space)).tolist()

    def score_genes(self, genes: np.ndarray) -> np.ndarray:
        """Vectorised score of a [n, n_genes] int array."""
        genes = np.asarray(genes, dtype=np.int64)
        self.calls += len(genes)
        sp, nb = self.space, self._n_blocks
        active = active_block_mask(genes, sp)
        bb = genes[:, :nb]
        cap = (self._block_cap[bb] * self._stage_w * active).sum(1) / self._stage_w.sum()
        depth = active.sum(1) / nb
        rf = ((self._kern[bb] - 1) * self._rf_scale * active).sum(1) / 600.0
        heads = []
        i = nb + 1
        for _ in range(2):
            width = np.array(sp.head_widths, dtype=float)[genes[:, i]] / max(sp.head_widths)
            layers = genes[:, i + 1: i + 1 + sp.head_layers]
            used = layers != 2
            k5 = layers == 1
            # deeper towers help only when wide enough: a width x depth interaction
            heads.append(width * (used.sum(1) + 0.5 * k5.sum(1)) / (1.5 * sp.head_layers))
            i += 1 + sp.head_layers
        head = 0.55 * heads[0] + 0.45 * heads[1]
        # receptive field: helpful up to a point, then mildly harmful (too coarse)
        rf_term = rf * np.exp(1.0 - rf)
        x = 1.4 * cap + 0.8 * depth + 0.6 * rf_term + 1.1 * head + 0.5 * np.sqrt(cap * head)
        # pairwise interactions between the chosen values (inactive backbone blocks do not count)
        onehot = np.zeros((len(genes), self._w.shape[0]))
        mask = np.concatenate([active, np.ones((len(genes), genes.shape[1] - nb), bool)], 1)
        rows, cols = np.nonzero(mask)
        onehot[rows, (genes + self._offsets[None, :])[rows, cols]] = 1.0
        with one_blas_thread():
            inter = ((onehot @ self._w) * onehot).sum(1)
        score = 0.25 + 0.5 * (1.0 - np.exp(-x / 2.0)) + 0.025 * np.tanh(inter / 4.0)
        return np.clip(score, 0.0, 1.0)


# -- caching ----------------------------------------------------------------------------------

class CachedAccuracy:
    """Caches an :class:`AccuracyEvaluator` by canonical id; counts evaluations and cache hits.

    The cache is a plain ``{canonical_id: Score}`` dict; plain numbers given as ``cache`` (an
    older cache without standard errors) load as scores with ``se=None``.
    """

    def __init__(self, base: AccuracyEvaluator, cache: Mapping[str, float | Score] | None = None) -> None:
        self.base = base
        self.cache: dict[str, Score] = {k: as_score(v) for k, v in (cache or {}).items()}
        self.evaluated = 0
        self.hits = 0

    def __contains__(self, cid: str) -> bool:
        return cid in self.cache

    def evaluate(self, archs: Sequence[Architecture]) -> list[Score]:
        ids = [a.canonical_id() for a in archs]
        todo: dict[str, Architecture] = {}
        for cid, a in zip(ids, archs, strict=True):
            if cid in self.cache or cid in todo:
                self.hits += 1
            else:
                todo[cid] = a
        if todo:
            scores = list(self.base.evaluate(list(todo.values())))
            if len(scores) != len(todo):
                raise ValueError(f"accuracy evaluator returned {len(scores)} scores for {len(todo)} archs")
            self.evaluated += len(todo)
            for cid, s in zip(todo, scores, strict=True):
                self.cache[cid] = as_score(s)
        return [self.cache[c] for c in ids]


class SupernetAccuracy:
    """The real accuracy: ``tracking.validate.ValidationScorer`` scores (``score`` key) with their
    standard errors (``score_se``: over pairs, or over sequences)."""

    def __init__(self, scorer: Any, key: str = "score") -> None:
        self.scorer = scorer
        self.key = key
        self.se_key = f"{key}_se"

    @classmethod
    def from_checkpoint(cls, supernet_path: str, data_dir: str, mode: str = "pairs",
                        **scorer_kwargs: Any) -> SupernetAccuracy:
        from tracking.checkpoint import load_supernet  # torch: imported only when needed
        from tracking.tune import tracker_config_from_meta
        from tracking.validate import ValidationScorer

        supernet, meta = load_supernet(supernet_path)
        scorer_kwargs.setdefault("tracker_config", tracker_config_from_meta(meta))  # tuned for this supernet
        return cls(ValidationScorer(supernet, data_dir, mode=mode, **scorer_kwargs))

    def evaluate(self, archs: Sequence[Architecture]) -> list[Score]:
        return [Score(float(r[self.key]), None if r.get(self.se_key) is None else float(r[self.se_key]))
                for r in self.scorer.score_many(list(archs))]


class EnsembleAccuracy:
    """Several supernets scoring together: a candidate's score is the mean of the members' scores,
    its standard error sqrt(sum se_i^2) / n (the members' validation errors taken as independent).

    Why: one supernet's ranking moves with its training seed (Kendall tau +0.49 to +0.66 over three
    1800-iteration seeds, docs/validation.md); the mean of three ranks at +0.60, the mean z-score
    at +0.61. The plain mean needs no reference set to standardise on, so a score does not depend
    on which candidates happen to share its batch; members trained by the same recipe score on
    one scale (their spreads over the study's 24 architectures: 0.035 to 0.039)."""

    def __init__(self, members: Sequence[SupernetAccuracy]) -> None:
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two supernets")
        spaces = {m.scorer.supernet.space for m in members}
        if len(spaces) > 1:
            raise ValueError("the ensemble's supernets were trained on different search spaces")
        self.members = list(members)
        self.scorer = self.members[0].scorer  # the space and settings the callers check

    def evaluate(self, archs: Sequence[Architecture]) -> list[Score]:
        per_member = [m.evaluate(archs) for m in self.members]
        n = len(self.members)
        out = []
        for scores in zip(*per_member, strict=True):
            ses = [s.se for s in scores]
            se = None if any(e is None for e in ses) else math.sqrt(sum(e * e for e in ses)) / n
            out.append(Score(sum(s.value for s in scores) / n, se))
        return out


def supernet_accuracy(supernet_paths: Sequence[str], data_dir: str, mode: str = "pairs",
                      **scorer_kwargs: Any) -> SupernetAccuracy | EnsembleAccuracy:
    """The scorer of one supernet checkpoint, or the ensemble of several (same data, mode and settings)."""
    members = [SupernetAccuracy.from_checkpoint(str(p), data_dir, mode=mode, **scorer_kwargs)
               for p in supernet_paths]
    return members[0] if len(members) == 1 else EnsembleAccuracy(members)


# -- latency, FLOPs ---------------------------------------------------------------------------

class LatencyEvaluator:
    """Predicted latency (ms) of architectures on one hardware target."""

    def __init__(self, name: str, model: LatencyModel, space: SearchSpace = DEFAULT_SPACE) -> None:
        self.name = name
        self.model = model
        self.space = space

    def genes(self, genes: np.ndarray) -> np.ndarray:
        if len(genes) == 0:
            return np.zeros(0)
        return np.asarray(self.model.predict_genes(np.asarray(genes, dtype=np.int64)), dtype=float)

    def evaluate(self, archs: Sequence[Architecture]) -> np.ndarray:
        return self.genes(genes_of(archs, self.space))

    def extreme(self, fastest: bool = True) -> tuple[float, np.ndarray]:
        """(ms, genes) of the fastest (or slowest) architecture. The fastest comes from the
        predictor's exact ``fastest()`` where it has one (``latency_tables.predict``); otherwise,
        and for the slowest, from coordinate descent on the gene vector starting at the smallest
        (largest) architecture, which is exact for additive tables."""
        exact = getattr(self.model, "fastest", None)
        if fastest and callable(exact):
            ms, arch = exact()
            return float(ms), np.array(to_genes(arch, self.space), dtype=np.int64)
        return extreme_genes(self.genes, self.space, fastest)


def extreme_genes(latency: Callable[[np.ndarray], np.ndarray], space: SearchSpace,
                  fastest: bool = True, passes: int = 3) -> tuple[float, np.ndarray]:
    card = gene_cardinalities(space)
    g = smallest_genes(space) if fastest else largest_genes(space)
    sign = 1.0 if fastest else -1.0
    best = sign * float(latency(g[None])[0])
    for _ in range(passes):
        improved = False
        for i, n in enumerate(card):
            cand = np.repeat(g[None], n, 0)
            cand[:, i] = np.arange(n)
            vals = sign * latency(cand)
            j = int(np.argmin(vals))
            if vals[j] < best - 1e-12:
                best, g, improved = float(vals[j]), cand[j].copy(), True
        if not improved:
            break
    return sign * best, g


def smallest_genes(space: SearchSpace = DEFAULT_SPACE) -> np.ndarray:
    """k3/e4 everywhere, earliest output, 128-wide towers of one 3x3 layer then skips."""
    g = []
    for gene in enumerate_genes(space):
        g.append(SKIP if gene.kind == "layer" and gene.layer > 0 else 0)
    return np.array(g, dtype=np.int64)


def largest_genes(space: SearchSpace = DEFAULT_SPACE) -> np.ndarray:
    """k7/e6 everywhere, last output, 256-wide towers of 5x5 layers."""
    g = []
    for gene in enumerate_genes(space):
        g.append(1 if gene.kind == "layer" else gene.n - 1)  # head layers: 1 = 5x5 (2 would be skip)
    return np.array(g, dtype=np.int64)


def fastest_latency(evaluator: LatencyEvaluator) -> float:
    """Fastest latency this target's table allows in the space (ms)."""
    return evaluator.extreme(fastest=True)[0]


class FlopsEvaluator:
    """MACs and params via ``tracking.flops.count_flops_params``, cached by canonical id."""

    def __init__(self, space: SearchSpace = DEFAULT_SPACE) -> None:
        from tracking.flops import count_flops_params

        self._count = count_flops_params
        self.space = space
        self.cache: dict[str, tuple[int, int]] = {}

    def evaluate(self, archs: Sequence[Architecture]) -> np.ndarray:
        """[n, 2] array of (MACs, params)."""
        out = []
        for a in archs:
            cid = a.canonical_id()
            if cid not in self.cache:
                macs, params = self._count(a, self.space)
                self.cache[cid] = (int(macs), int(params))
            out.append(self.cache[cid])
        return np.array(out, dtype=float).reshape(-1, 2)


def latency_evaluators(models: Mapping[str, LatencyModel | LatencyEvaluator],
                       space: SearchSpace = DEFAULT_SPACE) -> dict[str, LatencyEvaluator]:
    """Normalise ``{target: predictor}`` to ``{target: LatencyEvaluator}``."""
    out = {}
    for name, m in models.items():
        out[name] = m if isinstance(m, LatencyEvaluator) else LatencyEvaluator(name, m, space)
    return out


__all__ = [
    "AccuracyEvaluator", "LatencyModel", "Score", "as_score", "SurrogateAccuracy", "CachedAccuracy", "SupernetAccuracy",
    "EnsembleAccuracy", "supernet_accuracy",
    "LatencyEvaluator", "FlopsEvaluator", "gene_cardinalities", "genes_of", "archs_of",
    "active_block_mask", "extreme_genes", "smallest_genes", "largest_genes", "fastest_latency",
    "latency_evaluators", "HEAD_KERNELS",
]
