"""Search outputs: ``ranked.csv``, ``ranked.json``, the Pareto plot ``pareto.png`` and the front
table; every score comes with its standard error, and LightTrack-Mobile's point is marked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from search.runner import SearchResult


def fmt_score(score: float | None, se: float | None, digits: int = 4) -> str:
    """``0.5123 ± 0.0110`` (or just the score when it has no standard error)."""
    if score is None:
        return "-"
    return f"{score:.{digits}f}" if se is None else f"{score:.{digits}f} ± {se:.{digits}f}"


def reference_gains(result: SearchResult) -> dict[str, dict[str, Any]]:
    """Per target, what the search bought over LightTrack-Mobile among the evaluated architectures:
    ``best_score_at_latency`` (the best score at no more than Mobile's latency) and its
    ``score_gain``; ``fastest_at_score`` (the lowest latency at no less than Mobile's score, ms) and
    its ``speedup`` (Mobile's latency / that). Empty without a reference point."""
    ref = result.reference_arch
    if ref is None:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for t, ref_ms in ref.latency_ms.items():
        faster = [r.score for r in result.ranked if r.latency_ms[t] <= ref_ms]
        better = [r.latency_ms[t] for r in result.ranked if r.score >= ref.score]
        best = max(faster, default=None)
        fastest = min(better, default=None)
        out[t] = {"best_score_at_latency": best, "score_gain": None if best is None else best - ref.score,
                  "fastest_at_score": fastest,
                  "speedup": None if not fastest else ref_ms / fastest}
    return out


def ranked_frame(result: SearchResult) -> pd.DataFrame:
    rows = []
    for r in result.ranked:
        row = {"rank": r.rank, "arch": r.arch, "canonical_id": r.canonical_id, "score": r.score,
               "score_se": r.score_se}
        row.update({f"latency_ms[{t}]": v for t, v in r.latency_ms.items()})
        row.update({f"frame_ms[{t}]": v for t, v in r.frame_ms.items()})
        row.update({"macs": r.macs, "params": r.params, "on_front": r.on_front, "generation": r.generation})
        rows.append(row)
    return pd.DataFrame(rows)


def front_table(result: SearchResult) -> Any:
    """The front as a rich table (fastest first on the first target), score ± standard error,
    with LightTrack-Mobile's reference point as the last row (marked ``ref``; the CLI names it
    below the table)."""
    from rich.table import Table

    targets = list(result.ranked[0].latency_ms) if result.ranked else []
    t = Table(title=f"Pareto front ({len(result.front)} architectures); score ± standard error",
              caption="ref: LightTrack-Mobile, the published network" if result.reference_arch else None)
    # the whole tracked frame (network + pre/post-processing) where a table measured the latter
    framed = [x for x in targets if result.ranked and x in result.ranked[0].frame_ms]
    for col in ["", *(f"ms @ {x}" for x in targets), *(f"frame ms (fps) @ {x}" for x in framed),
                "score ± se", "id"]:
        t.add_column(col, no_wrap=True)
    t.add_column("lighttrack", overflow="fold")
    key = targets[0] if targets else None

    def frame_cells(r: Any) -> list[str]:
        return [f"{r.frame_ms[x]:.2f} ({r.fps[x]:.0f})" if x in r.frame_ms else "-" for x in framed]

    for r in sorted(result.front, key=lambda r: (r.latency_ms[key] if key else 0.0, -r.score)):
        t.add_row("", *(f"{r.latency_ms[x]:.3f}" for x in targets), *frame_cells(r), fmt_score(r.score, r.score_se),
                  r.canonical_id, r.arch)
    ref = result.reference_arch
    if ref is not None:
        t.add_row("ref",
                  *(f"{ref.latency_ms[x]:.3f}" if x in ref.latency_ms else "-" for x in targets), *frame_cells(ref),
                  fmt_score(ref.score, ref.score_se), ref.canonical_id, ref.arch, style="yellow")
    return t


def write_ranked(result: SearchResult, out_dir: str | Path) -> tuple[Path, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out / "ranked.csv", out / "ranked.json"
    ranked_frame(result).to_csv(csv_path, index=False)
    doc = {
        "algorithm": result.algorithm, "completed": result.completed,
        "generations_done": result.generations_done, "evaluated": result.evaluated,
        "cache_hits": result.cache_hits, "hypervolume": result.hypervolume, "reference": result.reference,
        "reference_arch": result.reference_arch.model_dump() if result.reference_arch is not None else None,
        "reference_gains": reference_gains(result),
        "spearman": result.spearman, "stats": result.stats,
        "front": [r.canonical_id for r in result.front],
        # per target: the 2-D front of score vs that latency (fastest first) and its normalised
        # hypervolume, the figures the service stores and its pareto endpoint serves
        "fronts": result.fronts, "hypervolumes": result.hypervolumes,
        "architectures": [r.model_dump() for r in result.ranked],
    }
    json_path.write_text(json.dumps(doc, indent=1))
    return csv_path, json_path


def plot_pareto(result: SearchResult, path: str | Path, budget_ms: float | None = None,
                budget_target: str | None = None) -> Path:
    """Score vs latency, one panel per target: every evaluated architecture, the front (with
    ± 1 standard error bars where scores have one), the best, and LightTrack-Mobile's point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = list(result.ranked[0].latency_ms) if result.ranked else []
    n = max(1, len(targets))
    fig, axes = plt.subplots(1, n, figsize=(5.5 * n, 4.2), squeeze=False)
    for ax, t in zip(axes[0], targets, strict=False):
        ax.scatter([r.latency_ms[t] for r in result.ranked], [r.score for r in result.ranked], s=9,
                   c="0.7", label="evaluated")
        # the front on this target alone (the archive front may be multi-target), as the run computed it
        by_id = {r.canonical_id: r for r in result.ranked}
        front = [by_id[c] for c in result.fronts.get(t, [])]
        if front:
            ax.step([r.latency_ms[t] for r in front], [r.score for r in front], where="post", c="C0", lw=1.5,
                    marker="o", ms=4, label=f"Pareto front ({t}), HV {result.hypervolumes.get(t, 0.0):.4f}")
            bars = [(r.latency_ms[t], r.score, r.score_se) for r in front if r.score_se is not None]
            if bars:
                ax.errorbar([b[0] for b in bars], [b[1] for b in bars], yerr=[b[2] for b in bars], fmt="none",
                            ecolor="C0", elinewidth=0.8, capsize=2, alpha=0.7)
        b = result.best
        if b is not None:
            ax.scatter([b.latency_ms[t]], [b.score], marker="*", s=160, c="C3", zorder=5, label="best score")
        ref = result.reference_arch
        if ref is not None and t in ref.latency_ms:
            ax.errorbar([ref.latency_ms[t]], [ref.score], yerr=None if ref.score_se is None else [ref.score_se],
                        fmt="D", ms=7, c="C1", mec="k", capsize=3, zorder=6,
                        label=f"LightTrack-Mobile {fmt_score(ref.score, ref.score_se, 3)}")
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
