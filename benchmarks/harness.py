"""Where every benchmark and study keeps its results: ``<root>/<name>/<YYYY-MM-DD>.json`` (UTC
date) and the printed text as ``.txt`` beside it. A run's settings go inside (``variant``), not
into the name: one folder holds a script's runs by date, none overwriting another (a second run on
a date gets ``<date>-2``, then ``-3``). The JSON holds ``name``, ``date``, ``variant``, ``command``
and the script's figures at the top level, where the older files had them.

Roots: ``benchmarks/results`` (the product's figures), ``experiments/results`` (studies); a
script's ``--results-dir`` (it replaced ``--out``) picks another, e.g. /tmp for a quick look.
Neither folder is an installed package: a benchmark runs as ``python benchmarks/x.py``, its folder
first on ``sys.path``, and imports ``harness``; a study puts the repository root on ``sys.path``
and imports ``benchmarks.harness``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import io
import itertools
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent / "results"
EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments" / "results"
_STEM = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:-(\d+))?$")


@contextlib.contextmanager
def quiet_host(lock: Path | None) -> Iterator[None]:
    """Hold an exclusive advisory lock (flock) on ``lock`` while measuring, so other jobs on a shared
    host that take it (shared) wait instead of disturbing the measurement; None: no lock."""
    if lock is None:
        yield
        return
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def add_arguments(ap: argparse.ArgumentParser, root: Path = BENCHMARKS) -> None:
    ap.add_argument("--results-dir", type=Path, default=root,
                    help=f"writes RESULTS_DIR/NAME/DATE.json and .txt (default {root})")


def variant(ap: argparse.ArgumentParser, args: argparse.Namespace, *named: str) -> dict[str, Any]:
    """What tells this run from a default one: the arguments off their defaults, and ``named``."""
    picked = {k: v for k, v in vars(args).items()
              if k != "results_dir" and (k in named or v != ap.get_default(k))}
    return json.loads(json.dumps(picked, default=str))  # JSON's own types: paths as text


def write_result(name: str, data: dict[str, Any], text: str, variant: dict[str, Any] | None = None,
                 out_dir: Path = BENCHMARKS, path: Path | None = None) -> Path:
    """Write one run's JSON and .txt; returns the JSON's path. ``path``: rewrite this run's own
    earlier file (a long run keeps its partial results as it goes)."""
    date = dt.datetime.now(dt.UTC).date().isoformat()
    head = {"name": name, "date": date, "variant": variant or {}, "command": sys.argv}
    assert not head.keys() & data.keys(), f"{name}: the data may not hold {sorted(head.keys() & data.keys())}"
    body = json.dumps({**head, **data}, indent=1, default=str) + "\n"
    if path is None:
        (folder := Path(out_dir) / name).mkdir(parents=True, exist_ok=True)
        for n in itertools.count(1):  # exclusive creation: two runs ending at once still get two files
            path = folder / (f"{date}.json" if n == 1 else f"{date}-{n}.json")
            with contextlib.suppress(FileExistsError), path.open("x") as f:
                f.write(body)
                break
    else:
        path.write_text(body)
    path.with_suffix(".txt").write_text(text if text.endswith("\n") else text + "\n")
    return path


def latest(name: str, variant: dict[str, Any] | None = None, out_dir: Path = BENCHMARKS,
           suffix: str = ".json") -> Path | None:
    """The newest ``suffix`` file of ``name`` (None if none); with ``variant``, the newest whose
    JSON's variant holds all those items."""
    runs = sorted(((m[1], int(m[2] or 1), p) for p in (Path(out_dir) / name).glob(f"*{suffix}")
                   if (m := _STEM.match(p.stem))), reverse=True)
    for *_, path in runs:
        js = path.with_suffix(".json")
        got = (json.loads(js.read_text()).get("variant") or {}) if variant and js.is_file() else {}
        if all(k in got and got[k] == v for k, v in (variant or {}).items()):
            return path
    return None


class _Tee(io.TextIOBase):
    def __init__(self, out: Any) -> None:
        self.out, self.kept = out, io.StringIO()
        self.flush, self.isatty, self.fileno = out.flush, out.isatty, out.fileno  # the real stream answers these

    def write(self, s: str) -> int:
        self.kept.write(s)
        return self.out.write(s)


def keep_stdout() -> io.StringIO:
    """From here on what is printed also goes into the returned buffer, for the .txt of a script
    that only prints (the screen shows the same). Lasts for the rest of the process."""
    sys.stdout = tee = _Tee(sys.stdout)
    return tee.kept
