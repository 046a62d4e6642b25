"""Supernet checkpoints: weights plus metadata (search space, training config, progress).

File format (``torch.save`` of a dict): ``{"format": "lutnas-supernet", "version": 1,
"state_dict": ..., "meta": {...}}``; ``meta["space"]`` is ``SearchSpace.to_dict()`` so the loaded
supernet is rebuilt on the same space. Extra meta keys (``config``, ``epoch``, ``iteration``, ...)
are kept as given and must be picklable.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from tracking.space import SearchSpace
from tracking.supernet import Supernet

FORMAT = "lutnas-supernet"
VERSION = 1


def save_checkpoint(path: str | Path, supernet: Supernet, meta: dict[str, Any] | None = None) -> Path:
    """Write atomically (temporary file + rename) so a crash never leaves a truncated checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    full_meta = dict(meta or {})
    full_meta["space"] = supernet.space.to_dict()
    payload = {"format": FORMAT, "version": VERSION, "state_dict": supernet.state_dict(), "meta": full_meta}
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_supernet(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[Supernet, dict[str, Any]]:
    """``(supernet in eval mode, meta)``; FileNotFoundError / ValueError name the problem."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"supernet checkpoint not found: {path}")
    try:
        # our own files: full unpickling is fine (meta may hold config objects)
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, AttributeError,
            ModuleNotFoundError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not a lutnas supernet checkpoint ({type(e).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a lutnas supernet checkpoint")
    if payload.get("version") != VERSION:
        raise ValueError(f"{path}: unsupported checkpoint version {payload.get('version')!r}")
    meta = dict(payload.get("meta") or {})
    space = SearchSpace.from_dict(meta["space"]) if "space" in meta else SearchSpace.paper()
    net = Supernet(space)
    try:
        net.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError) as e:
        raise ValueError(f"{path}: weights do not fit a supernet of its space: {str(e).splitlines()[0]}") from None
    net.eval()
    return net, meta
