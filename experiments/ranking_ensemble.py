"""Does an ensemble of supernets rank better than one? Several ``bench_ranking.py`` results scored
against the same stand-alone ground truth, combined.

Each input is a ``bench_ranking.py`` JSON with the same architectures and the same ground truth
(``--truth-from``); the supernets differ (seed, ``--supernet-iters``). For one protocol the
ensemble's score of an architecture is the mean over the supernets of its z-scored score (each
supernet's scores standardised over the architectures first, so a longer-trained supernet's higher
level does not outweigh the others), and also the plain mean of the scores, which is what the search
scores with. Prints, for each supernet and for the ensemble, Kendall tau-b
and Spearman rho against the truth with seeded bootstrap 90% intervals (``bench_ranking``'s), the
top-5 check, and the members' agreement with each other. Writes
experiments/results/ranking_ensemble/DATE.{json,txt}; a member is named by its file's variant label
(the older results) or its path.

    python experiments/ranking_ensemble.py experiments/results/bench_ranking/2026-12-07.json \\
        experiments/results/bench_ranking/2026-12-07-2.json --protocol pairs-uniform
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: benchmarks.harness
from bench_ranking import rank_agreement, top_k_overlap  # noqa: E402 - a sibling script, not a package

from benchmarks import harness  # noqa: E402 - a script folder, not an installed package


def label(path: Path) -> str:
    """How a member is named: the older results' own name (their variant says it), else the path."""
    former = (json.loads(path.read_text()).get("variant") or {}).get("former_name")
    return Path(former).stem if former else f"{path.parent.name}/{path.stem}"


def load(path: Path, protocol: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(architectures, ground truth, this supernet's scores) of one result file."""
    d = json.loads(path.read_text())
    rows = d["archs"]
    missing = [r["name"] for r in rows if not (r.get("supernet") or {}).get(protocol) or not r.get("standalone")]
    if missing:
        raise SystemExit(f"{path}: no {protocol} score or ground truth for {', '.join(missing[:5])}")
    truth = np.array([r["standalone"]["sequences"]["score"] for r in rows], float)
    score = np.array([r["supernet"][protocol]["score"] for r in rows], float)
    return [r["arch"] for r in rows], truth, score


def zscore(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / x.std(ddof=1)


def fmt(label: str, agr: dict[str, Any], top: dict[str, Any]) -> str:
    k, s = agr["kendall"], agr["spearman"]
    return (f"  {label:<44} tau {k['value']:+.3f} [{k['ci90'][0]:+.2f}, {k['ci90'][1]:+.2f}]  "
            f"rho {s['value']:+.3f} [{s['ci90'][0]:+.2f}, {s['ci90'][1]:+.2f}]  "
            f"top {top['k']} holds best: {'yes' if top['holds_best'] else 'no'} ({top['overlap']} of {top['k']})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path, nargs="+", help="bench_ranking JSON files (same archs and truth)")
    ap.add_argument("--protocol", default="pairs-uniform")
    ap.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    harness.add_arguments(ap, harness.EXPERIMENTS)
    args = ap.parse_args()
    loaded = [load(p, args.protocol) for p in args.results]
    archs, truth, _ = loaded[0]
    for p, (a, t, _) in zip(args.results[1:], loaded[1:], strict=True):
        if a != archs or not np.allclose(t, truth):
            raise SystemExit(f"{p}: other architectures or another ground truth than {args.results[0]}")
    scores = [s for _, _, s in loaded]
    lines = [f"# ranking_ensemble: {len(scores)} supernets, protocol {args.protocol}, {len(archs)} architectures, "
             f"bootstrap 90% intervals (seed {args.seed})"]
    out: dict[str, Any] = {"protocol": args.protocol, "n": len(archs), "members": [], "pairwise": []}
    for p, s in zip(args.results, scores, strict=True):
        agr, top = rank_agreement(truth, s, args.seed), top_k_overlap(truth, s, 5)
        lines.append(fmt(label(p), agr, top))
        out["members"].append({"file": str(p), "agreement": agr, "top5": top})
    ens = np.mean([zscore(s) for s in scores], axis=0)
    agr, top = rank_agreement(truth, ens, args.seed), top_k_overlap(truth, ens, 5)
    lines.append(fmt(f"ensemble (mean z-score of {len(scores)})", agr, top))
    out["ensemble"] = {"agreement": agr, "top5": top, "score": ens.tolist()}
    # the rule `lutnas search run --supernet A --supernet B` scores with (search.evaluators.EnsembleAccuracy):
    # the plain mean, which needs no set of architectures to standardise over
    mean = np.mean(scores, axis=0)
    agr, top = rank_agreement(truth, mean, args.seed), top_k_overlap(truth, mean, 5)
    lines.append(fmt(f"ensemble (mean score of {len(scores)}, the search's)", agr, top))
    out["ensemble_mean"] = {"agreement": agr, "top5": top, "score": mean.tolist()}
    lines.append("members against each other (Kendall tau-b):")
    from scipy.stats import kendalltau

    for (i, a), (j, b) in itertools.combinations(enumerate(scores), 2):
        tau = float(kendalltau(a, b).statistic)
        lines.append(f"  {label(args.results[i])} vs {label(args.results[j])}: {tau:+.3f}")
        out["pairwise"].append({"a": str(args.results[i]), "b": str(args.results[j]), "kendall": tau})
    text = "\n".join(lines)
    print(text)
    harness.write_result("ranking_ensemble", out, text, harness.variant(ap, args, "results"), args.results_dir)


if __name__ == "__main__":
    main()
