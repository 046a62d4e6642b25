"""Search outputs: ``ranked.csv``, ``ranked.json`` and the Pareto plot ``pareto.png``."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from search.runner import SearchResult


def ranked_frame(result: SearchResult) -> pd.DataFrame:
    rows = []
    for r in result.ranked:
        row = {"rank": r.rank, "arch": r.arch, "canonical_id": r.canonical_id, "score": r.score}
        row.update({f"latency_ms[{t}]": v for t, v in r.latency_ms.items()})
        row.update({"macs": r.macs, "params": r.params, "on_front": r.on_front, "generation": r.generation})
        rows.append(row)
    return pd.DataFrame(rows)


def write_ranked(result: SearchResult, out_dir: str | Path) -> tuple[Path, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out / "ranked.csv", out / "ranked.json"
    ranked_frame(result).to_csv(csv_path, index=False)
    doc = {
        "algorithm": result.algorithm, "completed": result.completed,
        "generations_done": result.generations_done, "evaluated": result.evaluated,
        "cache_hits": result.cache_hits, "hypervolume": result.hypervolume, "reference": result.reference,
        "spearman": result.spearman, "stats": result.stats,
        "front": [r.canonical_id for r in result.front],
        "architectures": [r.model_dump() for r in result.ranked],
    }
    json_path.write_text(json.dumps(doc, indent=1))
    return csv_path, json_path


def plot_pareto(result: SearchResult, path: str | Path, budget_ms: float | None = None,
                budget_target: str | None = None) -> Path:
    """Score vs latency, one panel per target: every evaluated architecture, the front, the best."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = list(result.ranked[0].latency_ms) if result.ranked else []
    n = max(1, len(targets))
    fig, axes = plt.subplots(1, n, figsize=(5.5 * n, 4.2), squeeze=False)
    for ax, t in zip(axes[0], targets, strict=False):
        ax.scatter([r.latency_ms[t] for r in result.ranked], [r.score for r in result.ranked], s=9,
                   c="0.7", label="evaluated")
        # the front on this target alone (the archive front may be multi-target)
        pts = sorted((r.latency_ms[t], r.score) for r in result.ranked)
        front, best = [], -1.0
        for x, y in pts:
            if y > best:
                front.append((x, y))
                best = y
        if front:
            ax.step([p[0] for p in front], [p[1] for p in front], where="post", c="C0", lw=1.5,
                    marker="o", ms=4, label=f"Pareto front ({t})")
        b = result.best
        if b is not None:
            ax.scatter([b.latency_ms[t]], [b.score], marker="*", s=160, c="C3", zorder=5, label="best score")
        if budget_ms is not None and (budget_target in (None, t)):
            ax.axvline(budget_ms, c="C2", ls="--", lw=1, label=f"budget {budget_ms:g} ms")
        ax.set_xlabel(f"predicted latency on {t} (ms)")
        ax.set_ylabel("validation score")
        ax.set_title(f"{result.algorithm}: {result.evaluated} evaluated, HV {result.hypervolume:.4f}",
                     fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
