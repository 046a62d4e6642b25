"""Tracking results in the GOT-10k toolkit's layout: writing them and scoring them by its rules.

::

    RESULTS/<seq>/<seq>_001.txt   one box a line, x,y,w,h (comma separated), one line per frame;
                                  the first line is the initialisation box
    RESULTS/<seq>/<seq>_002.txt   further repetitions (stochastic trackers), pooled as the
                                  toolkit pools them; <seq>_time.txt and other files are ignored

Any tracker that writes this layout (a subnet exported to ONNX and run on a device, another
project's tracker) is scored by exactly the rules ``lutnas supernet evaluate`` uses
(:mod:`tracking.metrics`): first frame dropped, boxes clipped to the sequence's resolution, only
frames where the target is visible. Every problem raises :class:`ResultsError` with a one-line
message naming the file (and line).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from tracking.data.got10k import Dataset, Sequence, read_dataset
from tracking.metrics import got10k_scores, sequence_ious

_SPLIT_RE = re.compile(r"[,\s]+")


class ResultsError(ValueError):
    """Malformed or mismatched results; the message is one line and names the file."""


def write_results(out: str | Path, boxes: dict[str, np.ndarray], repetition: int = 1) -> list[Path]:
    """Write ``{sequence: [N, 4] boxes}`` as ``out/<seq>/<seq>_<repetition:03d>.txt``. Values are
    written with full float64 precision (``repr``) so re-reading gives the very same scores (the
    toolkit writes ``%.3f``, which moves IoUs by ~1e-4)."""
    out = Path(out)
    written = []
    for name, b in boxes.items():
        arr = np.asarray(b, dtype=np.float64).reshape(-1, 4)
        path = out / name / f"{name}_{repetition:03d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(",".join(repr(float(v)) for v in row) + "\n" for row in arr))
        written.append(path)
    return written


def read_result_file(path: Path, n_frames: int) -> np.ndarray:
    """``[n_frames, 4]`` boxes of one results file (comma, tab or space separated)."""
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError:
        raise ResultsError(f"{path}: not a text file") from None
    while lines and not lines[-1].strip():  # a trailing blank line is harmless
        lines.pop()
    rows = []
    for n, raw in enumerate(lines, start=1):
        parts = [p for p in _SPLIT_RE.split(raw.strip()) if p]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            raise ResultsError(f"{path}:{n}: not numbers: {raw.strip()[:60]!r} (expected x,y,w,h)") from None
        if len(values) != 4:
            raise ResultsError(f"{path}:{n}: {len(values)} values, expected 4 (x,y,w,h)")
        if not all(np.isfinite(values)):
            raise ResultsError(f"{path}:{n}: non-finite value in {raw.strip()[:60]!r}")
        rows.append(values)
    if len(rows) != n_frames:
        raise ResultsError(f"{path}: {len(rows)} boxes for {n_frames} frames (one line per frame, the first "
                           "being the initialisation box)")
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def result_files(folder: Path, name: str) -> list[Path]:
    """The repetitions ``<name>_NNN.txt`` in ``folder``, in order."""
    pattern = re.compile(rf"^{re.escape(name)}_(\d+)\.txt$")
    found = [(int(m.group(1)), p) for p in folder.iterdir() if p.is_file() and (m := pattern.match(p.name))]
    return [p for _, p in sorted(found)]


def _summary(ious: list[np.ndarray]) -> dict[str, Any]:
    frames = int(sum(x.size for x in ious))
    if frames == 0:  # every frame after the first hidden: nothing to score (the toolkit gives NaN)
        return {"ao": None, "sr50": None, "sr75": None, "frames": 0}
    s = got10k_scores(ious)
    return {"ao": s["ao"], "sr50": s["sr50"], "sr75": s["sr75"], "frames": s["frames"]}


def sequence_result_ious(seq: Sequence, boxes: np.ndarray) -> np.ndarray:
    """Scored IoUs of one repetition on ``seq`` (GOT-10k rules)."""
    return sequence_ious(boxes, seq.boxes, bound=seq.resolution, visible=seq.scored)


def evaluate_results(data: str | Path | Dataset, results: str | Path) -> dict[str, Any]:
    """Score a results folder against a dataset: ``ao``, ``sr50``, ``sr75``, ``frames`` (scored
    frames, all repetitions), ``sequences``, ``repetitions`` and ``per_sequence[name]`` (the same
    keys). Every sequence of the data needs results and every results folder a sequence."""
    ds = data if isinstance(data, Dataset) else read_dataset(data, on_error="raise")
    root = Path(results)
    if not root.is_dir():
        raise FileNotFoundError(f"results folder {root} does not exist")
    by_name = {s.name: s for s in ds.sequences}
    unknown = sorted(p.name for p in root.iterdir()
                     if p.is_dir() and p.name not in by_name and not p.name.startswith("."))
    if unknown:
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise ResultsError(f"{root / unknown[0]}: results for unknown sequence {unknown[0]!r}{more}; "
                           f"not in {ds.root}")
    per_sequence: dict[str, dict[str, Any]] = {}
    pooled: list[np.ndarray] = []
    repetitions = 0
    for seq in ds.sequences:
        folder = root / seq.name
        files = result_files(folder, seq.name) if folder.is_dir() else []
        if not files:
            raise ResultsError(f"{folder / (seq.name + '_001.txt')}: results for sequence {seq.name!r} missing")
        ious = [sequence_result_ious(seq, read_result_file(f, len(seq))) for f in files]
        repetitions = max(repetitions, len(files))
        per_sequence[seq.name] = {**_summary(ious), "repetitions": len(files)}
        pooled += ious
    return {**_summary(pooled), "sequences": len(ds.sequences), "repetitions": repetitions,
            "per_sequence": per_sequence}
