"""Does the search's pick beat its reference once both are trained? (``lutnas search compare``)

A front point is scored with inherited weights; whether it is really better than LightTrack-Mobile
is only known after retraining both with the same budget and seeds. ``compare`` takes a finished
search's ``ranked.json``, keeps the front points whose predicted latency is at or below the
reference's (on one target), retrains each and the reference alone (``tracking.retrain``; from the
supernet's weights, or from scratch for the control) for every seed, tracks the held-out
sequences with each network's own BN statistics, and reports AO / SR@0.5 mean and spread per
architecture, and whether the difference to the reference is larger than the seeds' spread.

Each (architecture, seed) result is kept as one JSON file under ``workdir``, so a rerun skips what
is done and an interrupted comparison resumes.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tracking.progress import Progress
from tracking.space import Architecture, SearchSpace, lighttrack_mobile


@dataclass
class CompareRow:
    """One architecture's retrained held-out figures over seeds."""

    name: str
    arch: str
    latency_ms: float | None
    supernet_score: float | None
    seeds: list[int] = field(default_factory=list)
    ao: list[float] = field(default_factory=list)
    sr50: list[float] = field(default_factory=list)

    def mean(self, metric: str) -> float:
        return float(np.mean(getattr(self, metric)))

    def sd(self, metric: str) -> float | None:
        v = getattr(self, metric)
        return float(np.std(v, ddof=1)) if len(v) > 1 else None


@dataclass
class Verdict:
    """A pick against the reference on held-out AO: the difference of means and its standard error
    over seeds (Welch); ``decided`` only when the difference exceeds twice that error."""

    name: str
    ao_diff: float
    ao_diff_se: float | None
    decided: bool
    note: str


def load_front(results: Path) -> dict[str, Any]:
    """``ranked.json`` of a finished search, checked: ``{"front": [...], "reference": {...} | None}``."""
    path = results / "ranked.json" if results.is_dir() else results
    if not path.is_file():
        raise FileNotFoundError(f"{results}: no ranked.json (the output of `lutnas search run`)")
    try:
        doc = json.loads(path.read_text())
        ids = set(doc["front"])
        front = [a for a in doc["architectures"] if a["canonical_id"] in ids]
        ref = doc.get("reference_arch")
        for a in [*front, *([ref] if ref else [])]:
            if not isinstance(a["arch"], str) or not isinstance(a["latency_ms"], dict):
                raise TypeError
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{path}: not a search result") from None
    if not front:
        raise ValueError(f"{path}: the front is empty")
    return {"front": front, "reference": ref}


def choose(doc: dict[str, Any], reference: str, target: str | None, max_picks: int,
           space: SearchSpace) -> tuple[CompareRow, list[CompareRow], str]:
    """The reference row and the picks: front points at or below the reference's latency on
    ``target`` (default: the first), best supernet score first, at most ``max_picks``."""
    front, ref_doc = doc["front"], doc["reference"]
    targets = list(front[0]["latency_ms"])
    target = target or targets[0]
    if target not in targets:
        raise ValueError(f"--target {target!r}: the search's targets are {', '.join(targets)}")
    ref_arch = lighttrack_mobile() if reference == "mobile" else Architecture.parse(reference, space)
    ref_id = ref_arch.canonical_id()
    ref_ms, ref_score = None, None
    if ref_doc is not None and ref_doc.get("canonical_id") == ref_id:
        ref_ms, ref_score = ref_doc["latency_ms"].get(target), ref_doc.get("score")
    else:
        hit = [a for a in front if a["canonical_id"] == ref_id]
        if hit:
            ref_ms, ref_score = hit[0]["latency_ms"][target], hit[0]["score"]
    if ref_ms is None:
        raise ValueError(f"the search's results have no latency for the reference on {target!r} "
                         "(a search records LightTrack-Mobile's point; give --reference mobile)")
    name = "LightTrack-Mobile" if reference == "mobile" else "reference"
    ref_row = CompareRow(name, ref_arch.to_string(), ref_ms, ref_score)
    eligible = [a for a in front if a["latency_ms"][target] <= ref_ms and a["canonical_id"] != ref_id]
    eligible.sort(key=lambda a: -a["score"])
    picks = [CompareRow(f"pick {i + 1}", a["arch"], a["latency_ms"][target], a["score"])
             for i, a in enumerate(eligible[:max_picks])]
    return ref_row, picks, target


def _result_path(workdir: Path, arch: Architecture, seed: int, iters: int, inherited: bool) -> Path:
    return workdir / f"{arch.canonical_id()}-{'ft' if inherited else 'scratch'}-i{iters}-s{seed}.json"


def run_one(arch: Architecture, seed: int, *, supernet: Path | None, data: Path, test_data: Path, iters: int,
            workdir: Path, max_sequences: int, max_frames: int, threads: int | None = None, device: str = "auto",
            keep_checkpoints: bool = False, progress: Progress | None = None) -> dict[str, Any]:
    """Retrain ``arch`` with ``seed`` and track the held-out sequences (cached in ``workdir``)."""
    from tracking.retrain import held_out_score, retrain

    out = _result_path(workdir, arch, seed, iters, supernet is not None)
    if out.is_file():
        return json.loads(out.read_text())
    ckpt = out.with_suffix(".pt")
    res = retrain(arch, data, ckpt, iters, seed=seed, supernet=supernet, threads=threads, overwrite=True,
                  device=device, progress=progress)
    score = held_out_score(ckpt, arch, test_data, max_sequences=max_sequences, max_frames=max_frames, seed=0,
                           device=None if device == "auto" else device)
    doc = {"arch": arch.to_string(), "seed": seed, "iters": iters, "inherited": supernet is not None,
           "train_seconds": res["seconds"], "loss": res["loss"], **score}
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    tmp.replace(out)
    if not keep_checkpoints:
        ckpt.unlink(missing_ok=True)
    return doc


def compare(rows: list[CompareRow], seeds: int, progress: Progress | None = None, **run_kw: Any) -> list[CompareRow]:
    """Retrain and score every row for seeds ``0 .. seeds-1`` (the reference first); fills the rows."""
    work: list[tuple[CompareRow, int]] = [(r, s) for r in rows for s in range(seeds)]
    for k, (row, seed) in enumerate(work):
        if progress:
            progress("retrain", k, len(work), note=f"{row.name} seed {seed}")
        d = run_one(Architecture.from_string(row.arch), seed, **run_kw)
        row.seeds.append(seed)
        row.ao.append(float(d["ao"]))
        row.sr50.append(float(d["sr50"]))
    if progress:
        progress("retrain", len(work), len(work))
    return rows


def verdict(ref: CompareRow, pick: CompareRow) -> Verdict:
    """The pick's held-out AO against the reference's, with the seeds' spread."""
    diff = pick.mean("ao") - ref.mean("ao")
    sa, sb = pick.sd("ao"), ref.sd("ao")
    if sa is None or sb is None:
        return Verdict(pick.name, diff, None, False, "one seed: no spread, this budget cannot decide")
    se = math.sqrt(sa ** 2 / len(pick.ao) + sb ** 2 / len(ref.ao))
    if abs(diff) > 2 * se:
        word = "better" if diff > 0 else "worse"
        return Verdict(pick.name, diff, se, True, f"{word} than the reference (|diff| > 2 se)")
    return Verdict(pick.name, diff, se, False,
                   f"within the spread of {min(len(pick.ao), len(ref.ao))} seeds: this budget cannot decide")


def report(rows: list[CompareRow], target: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The comparison as plain data (``compare.json``, ``--json``)."""
    ref, picks = rows[0], rows[1:]
    out_rows = []
    for r in rows:
        d = asdict(r)
        d.update({"ao_mean": r.mean("ao"), "ao_sd": r.sd("ao"), "sr50_mean": r.mean("sr50"), "sr50_sd": r.sd("sr50")})
        out_rows.append(d)
    return {"target": target, "settings": settings, "rows": out_rows,
            "verdicts": [asdict(verdict(ref, p)) for p in picks]}


def table(doc: dict[str, Any]) -> Any:
    """The comparison as a rich table: held-out AO and SR@0.5, mean ± sd over seeds."""
    from rich.table import Table

    s = doc["settings"]
    how = "from inherited weights" if s["inherited"] else "from scratch"
    t = Table(title=f"retrained alone {how}: {s['iters']} iterations x {s['seeds']} seed(s); held out "
                    f"{s['sequences']} sequences x {s['frames']} frames")
    for col in ("", f"ms @ {doc['target']}", "supernet score", "AO mean ± sd", "SR@0.5 mean ± sd", "AO per seed"):
        t.add_column(col, no_wrap=True)
    t.add_column("lighttrack", overflow="fold")

    def pm(m: float, sd: float | None) -> str:
        return f"{m:.3f}" if sd is None else f"{m:.3f} ± {sd:.3f}"

    for r in doc["rows"]:
        t.add_row(r["name"], "-" if r["latency_ms"] is None else f"{r['latency_ms']:.3f}",
                  "-" if r["supernet_score"] is None else f"{r['supernet_score']:.4f}",
                  pm(r["ao_mean"], r["ao_sd"]), pm(r["sr50_mean"], r["sr50_sd"]),
                  " ".join(f"{v:.3f}" for v in r["ao"]), r["arch"])
    return t
