"""Accuracy predictor (Once-for-all style): a scikit-learn regressor on one-hot genes.

Trained on the candidates the expensive evaluator has scored so far, it ranks proposed children
so that only the promising ones reach the supernet. Its quality is reported as the Spearman rank
correlation between its predictions and the true scores of each new batch *before* it is
retrained on that batch (an honest out-of-sample figure).

Features: one-hot of every gene, with a backbone block after the output position encoded as an
extra "inactive" value (such blocks do not change the network). Default regressor: ridge
regression on those features (``kind="ridge"``). Measured on the surrogate landscape it ranks
as well as an extra-trees forest or an RBF kernel ridge (Spearman 0.80 at 200 samples, 0.88 at
960) while training in about 2 ms instead of 40-360 ms, which keeps the search's own overhead
under a millisecond per candidate. ``kind="trees"`` (seeded ``ExtraTreesRegressor``) is there
for landscapes with stronger interactions.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr
from sklearn.ensemble import ExtraTreesRegressor
from sklearn.linear_model import Ridge

from search.evaluators import active_block_mask, gene_cardinalities, one_blas_thread
from tracking.space import DEFAULT_SPACE, SearchSpace


class AccuracyPredictor:
    def __init__(self, space: SearchSpace = DEFAULT_SPACE, seed: int = 0, kind: str = "ridge") -> None:
        if kind not in ("ridge", "trees"):
            raise ValueError(f"predictor kind must be 'ridge' or 'trees', got {kind!r}")
        self.space = space
        self.seed = seed
        self.kind = kind
        card = gene_cardinalities(space).copy()
        self._nb = sum(space.stage_blocks)
        card[: self._nb] += 1  # the "inactive" value of each backbone block
        self._card = card
        self._offsets = np.concatenate(([0], np.cumsum(card)[:-1]))
        self._model: Ridge | ExtraTreesRegressor | None = None
        self.n_train = 0

    @property
    def trained(self) -> bool:
        return self._model is not None

    def features(self, genes: np.ndarray) -> np.ndarray:
        genes = np.asarray(genes, dtype=np.int64).copy()
        inactive = ~active_block_mask(genes, self.space)
        bb = genes[:, : self._nb]
        bb[inactive] = self._card[0] - 1
        genes[:, : self._nb] = bb
        X = np.zeros((len(genes), int(self._card.sum())))
        rows = np.repeat(np.arange(len(genes)), genes.shape[1])
        X[rows, (genes + self._offsets[None, :]).ravel()] = 1.0
        return X

    def fit(self, genes: np.ndarray, scores: np.ndarray) -> None:
        model: Ridge | ExtraTreesRegressor
        if self.kind == "ridge":
            model = Ridge(alpha=1.0)
        else:
            model = ExtraTreesRegressor(n_estimators=40, min_samples_leaf=2, max_features=0.5,
                                        random_state=self.seed, n_jobs=1)
        with one_blas_thread():
            model.fit(self.features(genes), np.asarray(scores, dtype=float))
        self._model = model
        self.n_train = len(genes)

    def predict(self, genes: np.ndarray) -> np.ndarray:
        if self._model is None:
            raise RuntimeError("accuracy predictor used before it was trained")
        if len(genes) == 0:
            return np.zeros(0)
        with one_blas_thread():
            return self._model.predict(self.features(genes))


def spearman(pred: np.ndarray, true: np.ndarray) -> float | None:
    """Spearman rank correlation, or None where it is undefined (fewer than 3 points, constants)."""
    pred, true = np.asarray(pred, float), np.asarray(true, float)
    if len(pred) < 3 or np.ptp(pred) == 0 or np.ptp(true) == 0:
        return None
    return float(spearmanr(pred, true).statistic)
