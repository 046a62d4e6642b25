"""Reader for tracking data in the GOT-10k layout, and the other common layouts (LaSOT, OTB).

::

    ROOT/list.txt                 one sequence folder name a line (optional: else every folder
                                  holding a groundtruth file, one level down for LaSOT's classes)
    ROOT/<seq>/00000001.jpg ...   frames, numbered (.jpg/.jpeg/.png); or in ROOT/<seq>/img/
    ROOT/<seq>/groundtruth.txt    one box a line: x,y,w,h (comma, tab or space separated);
                                  OTB's groundtruth_rect.txt is read when groundtruth.txt is absent

Optional per-sequence labels, each one value per frame:

* GOT-10k: ``absence.label`` (1: target absent), ``cover.label`` (visible ratio 0..8, 0: fully
  covered), ``meta_info.ini`` (its ``resolution: (W, H)`` is the image bound for scoring);
* LaSOT (``ROOT/<class>/<class>-<n>/img/...``): ``full_occlusion.txt``, ``out_of_view.txt`` (0/1,
  comma separated on one line).

``Sequence.visible`` is true where no label says the target is hidden (pytracking's rule, used for
training pairs); ``Sequence.scored`` is the GOT-10k toolkit's evaluation mask (``cover > 0`` when
``cover.label`` exists, else ``visible``). A box that is empty (w or h <= 0) or has a NaN is
accepted only on a frame where the target is not visible (LaSOT writes ``0,0,0,0`` or NaN there).

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
    visible: np.ndarray | None = None  # [N] bool, target visible; None: every frame
    scored: np.ndarray | None = None  # [N] bool, frames the GOT-10k toolkit scores; None: visible
    meta_resolution: tuple[int, int] | None = None  # (width, height) from meta_info.ini

    def __post_init__(self) -> None:
        n = len(self.frames)
        self.visible = np.ones(n, bool) if self.visible is None else np.asarray(self.visible, bool)
        self.scored = self.visible.copy() if self.scored is None else np.asarray(self.scored, bool)
        if self.visible.shape != (n,) or self.scored.shape != (n,):
            raise ValueError(f"{self.name}: visibility flags must have one value per frame ({n})")

    def __len__(self) -> int:
        return len(self.frames)

    def load_frame(self, i: int) -> np.ndarray:
        """Frame ``i`` (0-based) as an HxWx3 uint8 RGB array."""
        return load_image(self.frames[i])

    @cached_property
    def resolution(self) -> tuple[int, int]:
        """(width, height): ``meta_info.ini``'s when it has one, else the first frame's header
        (read lazily, without decoding the image)."""
        if self.meta_resolution is not None:
            return self.meta_resolution
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
    boxes, issues, soft = _parse_boxes(path)
    keep = [i for i in range(len(boxes)) if i + 1 not in soft]
    return boxes[keep].reshape(-1, 4), issues + list(soft.values())


def _parse_boxes(path: Path) -> tuple[np.ndarray, list[Issue], dict[int, Issue]]:
    """``(boxes, issues, soft)``: every 4-number line as a row (empty or NaN boxes included);
    ``soft`` maps the line number of each empty or non-finite box to its issue, which the caller
    forgives on frames where the target is not visible."""
    boxes: list[list[float]] = []
    issues: list[Issue] = []
    soft: dict[int, Issue] = {}
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        return np.zeros((0, 4)), [Issue(path, None, "not a text file")], {}
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
            soft[n] = Issue(path, n, f"non-finite value in {line[:60]!r}")
        elif values[2] <= 0 or values[3] <= 0:
            soft[n] = Issue(path, n, f"empty box (w={values[2]:g}, h={values[3]:g})")
        boxes.append(values)
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4), issues, soft


GT_FILES = ("groundtruth.txt", "groundtruth_rect.txt")  # GOT-10k/LaSOT, OTB
# label file -> (values allowed, True when a nonzero value means hidden)
FLAG_FILES = {"absence.label": (range(0, 2), True), "full_occlusion.txt": (range(0, 2), True),
              "out_of_view.txt": (range(0, 2), True), "cover.label": (range(0, 9), False)}
_RES_RE = re.compile(r"^\(\s*(\d+)\s*,\s*(\d+)\s*\)$")


def groundtruth_file(path: Path) -> Path | None:
    """The sequence folder's groundtruth file (GOT-10k/LaSOT name first, then OTB's)."""
    for name in GT_FILES:
        if (path / name).is_file():
            return path / name
    return None


def read_flags(path: Path, n: int, allowed: range) -> tuple[np.ndarray | None, list[Issue]]:
    """One integer label per frame (one a line, or comma/space separated): ``n`` values in
    ``allowed``; ``None`` and the issue otherwise."""
    try:
        tokens = [t for t in _SPLIT_RE.split(path.read_text()) if t]
        values = [float(t) for t in tokens]
    except (UnicodeDecodeError, ValueError):
        return None, [Issue(path, None, f"not integer labels (expected {allowed.start}..{allowed.stop - 1})")]
    if len(values) != n:
        return None, [Issue(path, None, f"{len(values)} labels for {n} frames")]
    bad = [i for i, v in enumerate(values) if not (v.is_integer() and int(v) in allowed)]
    if bad:
        return None, [Issue(path, None, f"label {tokens[bad[0]]!r} of frame {bad[0] + 1} is not in "
                                        f"{allowed.start}..{allowed.stop - 1}")]
    return np.asarray(values, dtype=np.int64), []


def read_meta_resolution(path: Path) -> tuple[tuple[int, int] | None, list[Issue]]:
    """``(width, height)`` from a GOT-10k ``meta_info.ini`` (``resolution: (W, H)``), ``None`` when
    the file has no resolution line."""
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError:
        return None, [Issue(path, None, "not a text file")]
    for n, raw in enumerate(lines, start=1):
        key, sep, value = raw.partition(":")
        if sep and key.strip() == "resolution":
            m = _RES_RE.match(value.strip())
            if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
                return None, [Issue(path, n, f"resolution {value.strip()[:40]!r} is not (width, height)")]
            return (int(m.group(1)), int(m.group(2))), []
    return None, []


def _numbered_frames(path: Path) -> tuple[dict[int, Path], list[Issue]]:
    """Frame number -> file of a sequence folder (frames in ``img/`` for LaSOT and OTB), and the
    issues: none at all, or gaps in the numbering."""
    frame_dir = path / "img" if (path / "img").is_dir() else path
    numbered: dict[int, Path] = {}
    for p in frame_dir.iterdir():
        m = FRAME_RE.match(p.name)
        if m and p.is_file():
            numbered[int(m.group(1))] = p
    if not numbered:
        return numbered, [Issue(frame_dir, None, "no frames (expected 00000001.jpg or .png ...)")]
    first, last = (0 if 0 in numbered else 1), max(numbered)
    missing = [i for i in range(first, last + 1) if i not in numbered]
    if not missing:
        return numbered, []
    ext, width = numbered[last].suffix, len(numbered[last].stem)
    shown = ", ".join(f"{i:0{width}d}{ext}" for i in missing[:3]) + (" ..." if len(missing) > 3 else "")
    return numbered, [Issue(frame_dir, None, f"{len(missing)} missing frame(s): {shown}")]


def _visibility(path: Path, n: int) -> tuple[np.ndarray, np.ndarray | None, list[Issue]]:
    """Per-frame visibility from the flag files present, GOT-10k's cover labels, and the issues."""
    visible, cover = np.ones(n, bool), None
    for fname, (allowed, hidden_if_set) in FLAG_FILES.items():
        if (path / fname).is_file():
            flags, flag_issues = read_flags(path / fname, n, allowed)
            if flags is None:
                return visible, cover, flag_issues
            visible &= (flags == 0) if hidden_if_set else (flags > 0)
            cover = flags if fname == "cover.label" else cover
    return visible, cover, []


def read_sequence(path: Path, name: str | None = None) -> tuple[Sequence | None, list[Issue]]:
    """One sequence folder; ``None`` and the issues when it is malformed."""
    name = name or path.name
    if not path.is_dir():
        return None, [Issue(path, None, "sequence folder missing")]
    gt_path = groundtruth_file(path)
    if gt_path is None:
        return None, [Issue(path / GT_FILES[0], None, "groundtruth.txt missing (or OTB's groundtruth_rect.txt)")]
    numbered, issues = _numbered_frames(path)
    boxes, box_issues, soft = _parse_boxes(gt_path)
    issues += box_issues
    if not issues and len(boxes) != len(numbered):
        issues.append(Issue(gt_path, None, f"{len(boxes)} boxes for {len(numbered)} frames"))
    if issues:
        return None, issues
    visible, cover, flag_issues = _visibility(path, len(boxes))
    if flag_issues:
        return None, flag_issues
    meta_resolution = None
    if (path / "meta_info.ini").is_file():
        meta_resolution, meta_issues = read_meta_resolution(path / "meta_info.ini")
        if meta_issues:
            return None, meta_issues
    # an empty or NaN box is fine where the target is hidden, never where it is visible or on the
    # first frame (the tracker starts from it)
    for line, issue in sorted(soft.items()):
        if visible[line - 1] or line == 1:
            return None, [issue]
    if not visible.any():
        return None, [Issue(path, None, "the target is never visible")]
    valid = np.isfinite(boxes).all(axis=1)
    # the toolkit's mask; a NaN box it would score (NaN AO) is left out instead
    scored = ((cover > 0) if cover is not None else visible) & valid
    frames = [numbered[i] for i in sorted(numbered)]
    return Sequence(name=name, path=path, frames=frames, boxes=boxes, visible=visible, scored=scored,
                    meta_resolution=meta_resolution), []


def find_sequences(root: Path) -> list[tuple[str, Path]]:
    """``(name, folder)`` of every sequence under ``root`` without a list: folders holding a
    groundtruth file, and one level down (LaSOT's ``<class>/<class>-<n>``)."""
    found = []
    for p in sorted(root.iterdir()):
        if not p.is_dir():
            continue
        if groundtruth_file(p) is not None:
            found.append((p.name, p))
        else:
            found += [(q.name, q) for q in sorted(p.iterdir()) if q.is_dir() and groundtruth_file(q) is not None]
    return found


def sequence_folder(root: Path, name: str) -> Path:
    """Folder of a listed sequence: ``root/name``, or LaSOT's ``root/<class>/name``."""
    direct = root / name
    if direct.is_dir() or "-" not in name:
        return direct
    nested = root / name.rsplit("-", 1)[0] / name
    return nested if nested.is_dir() else direct


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
            names.append((name, n, sequence_folder(root, name)))
    else:
        issues.append(Issue(list_path, None, "list.txt missing; using every folder with a groundtruth.txt"))
        names = [(name, None, path) for name, path in find_sequences(root)]
    if on_error == "raise" and issues and list_path.is_file():
        raise DatasetError(str(issues[0]))
    sequences: list[Sequence] = []
    skipped: list[str] = []
    for name, line, path in names:
        seq, seq_issues = read_sequence(path, name)
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
