"""Reader for tracking data in the GOT-10k layout.

::

    ROOT/list.txt                 one sequence folder name a line
    ROOT/<seq>/00000001.jpg ...   frames numbered from 1, 8 digits (.jpg/.jpeg/.png)
    ROOT/<seq>/groundtruth.txt    one box a line: x,y,w,h (comma or whitespace separated)

Problems are collected as :class:`Issue` (file, line, reason). With ``on_error="skip"`` a bad
sequence is left out and reported; with ``on_error="raise"`` the first problem raises
:class:`DatasetError`, whose message starts with ``file:line:``. Either way nothing crashes later
in training because of a malformed sequence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Literal

import numpy as np

FRAME_RE = re.compile(r"^(\d+)\.(jpg|jpeg|png)$", re.IGNORECASE)
_SPLIT_RE = re.compile(r"[,\s]+")
OnError = Literal["skip", "raise"]


class DatasetError(ValueError):
    """Malformed tracking data; the message names the file (and line when there is one)."""


@dataclass(frozen=True)
class Issue:
    file: Path
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else f"{self.file}"
        return f"{where}: {self.reason}"


@dataclass
class Sequence:
    name: str
    path: Path
    frames: list[Path]
    boxes: np.ndarray  # [N, 4] float64, x y w h

    def __len__(self) -> int:
        return len(self.frames)

    def load_frame(self, i: int) -> np.ndarray:
        """Frame ``i`` (0-based) as an HxWx3 uint8 RGB array."""
        return load_image(self.frames[i])

    @cached_property
    def resolution(self) -> tuple[int, int]:
        """(width, height) of the first frame."""
        from PIL import Image

        with Image.open(self.frames[0]) as im:
            return im.size


@dataclass
class Dataset:
    root: Path
    sequences: list[Sequence]
    issues: list[Issue] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, i: int) -> Sequence:
        return self.sequences[i]

    @property
    def n_frames(self) -> int:
        return sum(len(s) for s in self.sequences)

    def report(self) -> str:
        lines = [f"{self.root}: {len(self.sequences)} sequences, {self.n_frames} frames ok; "
                 f"{len(self.skipped)} skipped; {len(self.issues)} issues"]
        lines += [f"  {issue}" for issue in self.issues]
        return "\n".join(lines)


# Frames beyond this are refused before decoding: data can come from teams' uploads, and a small
# compressed file can claim a huge canvas (a decompression bomb).
MAX_IMAGE_PIXELS = 4096 * 4096


def load_image(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:  # lazy: only the header is read until convert()
        w, h = im.size
        if w * h > MAX_IMAGE_PIXELS:
            raise ValueError(f"frame {Path(path).name} is {w}x{h}, beyond the {MAX_IMAGE_PIXELS}-pixel limit")
        return np.asarray(im.convert("RGB"))


def parse_groundtruth(path: Path) -> tuple[np.ndarray, list[Issue]]:
    """Boxes of a groundtruth file and the problems found (bad lines, empty or zero boxes)."""
    boxes: list[list[float]] = []
    issues: list[Issue] = []
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        return np.zeros((0, 4)), [Issue(path, None, "not a text file")]
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            issues.append(Issue(path, n, "empty line (expected x,y,w,h)"))
            continue
        parts = [p for p in _SPLIT_RE.split(line) if p]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            issues.append(Issue(path, n, f"not numbers: {line[:60]!r} (expected x,y,w,h)"))
            continue
        if len(values) != 4:
            issues.append(Issue(path, n, f"{len(values)} values, expected 4 (x,y,w,h)"))
            continue
        if not all(np.isfinite(values)):
            issues.append(Issue(path, n, f"non-finite value in {line[:60]!r}"))
            continue
        if values[2] <= 0 or values[3] <= 0:
            issues.append(Issue(path, n, f"empty box (w={values[2]:g}, h={values[3]:g})"))
            continue
        boxes.append(values)
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4), issues


def read_sequence(path: Path, name: str | None = None) -> tuple[Sequence | None, list[Issue]]:
    """One sequence folder; ``None`` and the issues when it is malformed."""
    name = name or path.name
    if not path.is_dir():
        return None, [Issue(path, None, "sequence folder missing")]
    gt_path = path / "groundtruth.txt"
    if not gt_path.is_file():
        return None, [Issue(gt_path, None, "groundtruth.txt missing")]
    numbered: dict[int, Path] = {}
    for p in path.iterdir():
        m = FRAME_RE.match(p.name)
        if m and p.is_file():
            numbered[int(m.group(1))] = p
    issues: list[Issue] = []
    if not numbered:
        issues.append(Issue(path, None, "no frames (expected 00000001.jpg or .png ...)"))
    else:
        last = max(numbered)
        missing = [i for i in range(1, last + 1) if i not in numbered]
        if missing:
            ext = numbered[last].suffix
            shown = ", ".join(f"{i:08d}{ext}" for i in missing[:3]) + (" ..." if len(missing) > 3 else "")
            issues.append(Issue(path, None, f"{len(missing)} missing frame(s): {shown}"))
    boxes, box_issues = parse_groundtruth(gt_path)
    issues += box_issues
    if not issues and len(boxes) != len(numbered):
        issues.append(Issue(gt_path, None, f"{len(boxes)} boxes for {len(numbered)} frames"))
    if issues:
        return None, issues
    frames = [numbered[i] for i in sorted(numbered)]
    return Sequence(name=name, path=path, frames=frames, boxes=boxes), []


def read_dataset(root: str | Path, on_error: OnError = "skip") -> Dataset:
    """Read a GOT-10k-layout folder. ``on_error``: ``"skip"`` leaves bad sequences out (listed in
    ``Dataset.issues``/``skipped``), ``"raise"`` raises :class:`DatasetError` at the first one."""
    if on_error not in ("skip", "raise"):
        raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {root} does not exist")
    issues: list[Issue] = []
    list_path = root / "list.txt"
    if list_path.is_file():
        names = []
        for n, raw in enumerate(list_path.read_text().splitlines(), start=1):
            name = raw.strip()
            if not name:
                continue
            if "/" in name or "\\" in name or name in (".", ".."):
                issues.append(Issue(list_path, n, f"bad sequence name {name!r}"))
                continue
            names.append((name, n))
    else:
        issues.append(Issue(list_path, None, "list.txt missing; using every folder with a groundtruth.txt"))
        names = [(p.name, None) for p in sorted(root.iterdir()) if (p / "groundtruth.txt").is_file()]
    if on_error == "raise" and issues and list_path.is_file():
        raise DatasetError(str(issues[0]))
    sequences: list[Sequence] = []
    skipped: list[str] = []
    for name, line in names:
        seq, seq_issues = read_sequence(root / name, name)
        if seq is None:
            if line is not None and seq_issues and seq_issues[0].reason == "sequence folder missing":
                seq_issues = [Issue(list_path, line, f"sequence folder {name!r} missing")]
            if on_error == "raise":
                raise DatasetError(str(seq_issues[0]))
            skipped.append(name)
            issues += seq_issues
        else:
            sequences.append(seq)
    if not sequences and on_error == "raise":
        raise DatasetError(f"{root}: no sequences")
    return Dataset(root=root, sequences=sequences, issues=issues, skipped=skipped)


def check_dataset(root: str | Path, deep: bool = False) -> Dataset:
    """``read_dataset(root, "skip")``; with ``deep`` also decode every frame and flag unreadable
    frames or frames whose size differs from the sequence's first frame."""
    ds = read_dataset(root, on_error="skip")
    if not deep:
        return ds
    from PIL import Image, UnidentifiedImageError

    good = []
    for seq in ds.sequences:
        size, bad = None, None
        for f in seq.frames:
            try:
                with Image.open(f) as im:
                    im.load()
                    if size is None:
                        size = im.size
                    elif im.size != size:
                        bad = Issue(f, None, f"frame size {im.size} differs from first frame {size}")
            except (UnidentifiedImageError, OSError) as e:
                bad = Issue(f, None, f"unreadable image ({type(e).__name__})")
            if bad:
                break
        if bad:
            ds.issues.append(bad)
            ds.skipped.append(seq.name)
        else:
            good.append(seq)
    ds.sequences = good
    return ds
