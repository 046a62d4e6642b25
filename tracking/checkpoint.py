"""Supernet checkpoints: weights plus metadata (search space, training config, progress).

File format (``torch.save`` of a dict, version 2): ``{"format": "lutnas-supernet", "version": 2,
"state_dict": {name: tensor}, "meta": {...}}`` where ``meta`` holds only plain data: dicts (str
or int keys), lists, str, int, float, bool, None and tensors (the optimizer state). That is what
``torch.load(weights_only=True)`` reads without unpickling any object, so loading a checkpoint
never runs code from it: checkpoints are uploaded by teams and must be treated as hostile.
``meta["space"]`` is ``SearchSpace.to_dict()`` so the loaded supernet is rebuilt on the same space.

Version 1 (lutnas <= 0.1) was written the same way but loaded with full unpickling, so its meta
could hold arbitrary objects. It is never read implicitly: its owner converts it once with
``lutnas supernet convert OLD`` (:func:`convert_checkpoint`), which unpickles it and therefore must
only be run on files the owner wrote.
"""

from __future__ import annotations

import math
import os
import pickle  # only for its exception class; nothing here unpickles but convert_checkpoint  # nosec B403
import tempfile
import zipfile
from pathlib import Path, PurePath
from typing import Any

import torch

from tracking.space import SearchSpace
from tracking.supernet import Supernet

FORMAT = "lutnas-supernet"
VERSION = 2
CONVERT_HINT = "convert it once with `lutnas supernet convert` (only for a file you trust)"


class CheckpointError(ValueError):
    """A file that is not a loadable lutnas checkpoint. The message never names a path: the
    server shows it to teams (callers that know the path add it themselves)."""


def _check_plain(value: Any, where: str = "meta") -> None:
    """Raise TypeError unless ``value`` is plain data a weights-only load can read back."""
    if value is None or isinstance(value, bool | int | str | torch.Tensor):
        return
    if isinstance(value, float):
        return
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str | int) or isinstance(k, bool):
                raise TypeError(f"{where}: key {k!r} is not a str or int")
            _check_plain(v, f"{where}[{k!r}]")
        return
    raise TypeError(f"{where}: {type(value).__name__} is not plain checkpoint data "
                    "(dict, list, str, int, float, bool, None or tensor)")


def _plain(value: Any, where: str = "meta") -> Any:
    """Best-effort conversion of a version-1 meta value to plain data (for :func:`convert_checkpoint`)."""
    if value is None or isinstance(value, bool | int | float | str | torch.Tensor):
        return value
    if hasattr(value, "model_dump"):  # pydantic models (training configs)
        return _plain(value.model_dump(), where)
    if isinstance(value, PurePath):
        return str(value)
    if hasattr(value, "item") and getattr(value, "shape", None) == ():  # numpy scalars
        return value.item()
    if isinstance(value, list | tuple):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {(k if isinstance(k, str | int) and not isinstance(k, bool) else str(k)): _plain(v, f"{where}[{k!r}]")
                for k, v in value.items()}
    raise CheckpointError(f"{where}: cannot convert a {type(value).__name__} to plain checkpoint data")


def _write_atomic(path: Path, payload: dict[str, Any]) -> Path:
    """Temporary file + rename so a crash never leaves a truncated checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def save_checkpoint(path: str | Path, supernet: Supernet, meta: dict[str, Any] | None = None) -> Path:
    """Write a version-2 checkpoint; TypeError if ``meta`` holds anything but plain data."""
    full_meta = dict(meta or {})
    full_meta["space"] = supernet.space.to_dict()
    _check_plain(full_meta)
    payload = {"format": FORMAT, "version": VERSION, "state_dict": dict(supernet.state_dict()), "meta": full_meta}
    return _write_atomic(Path(path), payload)


def read_payload(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The checked version-2 payload, read weights-only (no object in the file is ever built)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError("supernet checkpoint not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, AttributeError,
            ModuleNotFoundError, UnicodeDecodeError, ValueError, TypeError, IndexError, KeyError) as e:
        # weights-only refuses any object that is not a tensor or plain data; an old checkpoint
        # with objects in its meta lands here too
        raise CheckpointError(f"not a lutnas supernet checkpoint of the current format ({type(e).__name__}); "
                              f"if an earlier lutnas wrote it, {CONVERT_HINT}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError("not a lutnas supernet checkpoint")
    version = payload.get("version")
    if version != VERSION:
        hint = f"; {CONVERT_HINT}" if version == 1 else ""
        raise CheckpointError(f"unsupported checkpoint version {version!r} (this lutnas reads {VERSION}){hint}")
    state, meta = payload.get("state_dict"), payload.get("meta")
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                               for k, v in state.items()):
        raise CheckpointError("checkpoint weights are not a mapping of names to tensors")
    if not isinstance(meta, dict):
        raise CheckpointError("checkpoint meta is not a mapping")
    return payload


def _check_space_bounds(space: SearchSpace) -> None:
    """Refuse spaces that would build an unreasonably large network before any weight is read
    (the space comes from the file, and a hostile one could ask for gigabytes)."""
    ints = [*space.stage_blocks, *space.stage_channels, *space.stage_strides, *space.head_widths,
            space.head_layers, space.stem_channels, space.template_size, space.search_size, space.neck_channels]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in ints):
        raise CheckpointError("checkpoint search space: every size must be a positive integer")
    if (len(space.stage_blocks) != len(space.stage_channels) or len(space.stage_blocks) != len(space.stage_strides)
            or len(space.stage_blocks) > 8 or sum(space.stage_blocks) > 32 or space.head_layers > 16
            or max([*space.stage_channels, *space.head_widths, space.stem_channels, space.neck_channels]) > 1024
            or max(space.template_size, space.search_size) > 512 or max(space.stage_strides) > 4):
        raise CheckpointError("checkpoint search space is outside the sizes lutnas builds")


def load_supernet(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[Supernet, dict[str, Any]]:
    """``(supernet in eval mode, meta)``; FileNotFoundError / CheckpointError (a ValueError) name
    the problem without naming the path."""
    payload = read_payload(path, map_location)
    meta = dict(payload["meta"])
    try:
        space = SearchSpace.from_dict(meta["space"]) if "space" in meta else SearchSpace.paper()
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(f"checkpoint search space is invalid: {str(e).splitlines()[0] if str(e) else e!r}") from None
    _check_space_bounds(space)
    net = Supernet(space)
    try:
        net.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError) as e:
        raise CheckpointError(f"weights do not fit a supernet of its space: {str(e).splitlines()[0]}") from None
    if any(not math.isfinite(float(t.float().abs().max())) for t in payload["state_dict"].values() if t.numel()):
        raise CheckpointError("checkpoint weights contain NaN or infinite values")
    net.eval()
    return net, meta


def convert_checkpoint(src: str | Path, dst: str | Path | None = None) -> dict[str, Any]:
    """Rewrite a version-1 checkpoint (full unpickling) as version 2. Runs code the file may
    carry, so this is only for the owner's own files, run by the owner: never on a server.
    ``dst`` defaults to ``src`` (replaced atomically, the original kept as ``src.v1.bak``)."""
    src = Path(src)
    dst = Path(dst) if dst is not None else src
    if not src.is_file():
        raise FileNotFoundError(f"{src}: no such file")
    try:
        # the one place that unpickles: an explicit, owner-run conversion of the owner's own file
        payload = torch.load(src, map_location="cpu", weights_only=False)  # nosec B614
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, AttributeError,
            ModuleNotFoundError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{src} is not a lutnas supernet checkpoint ({type(e).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{src} is not a lutnas supernet checkpoint")
    version = payload.get("version")
    if version == VERSION:
        read_payload(src)  # already current: check it reads weights-only
        if dst != src:
            _write_atomic(dst, payload)
        return {"source": str(src), "out": str(dst), "from_version": VERSION, "converted": False}
    if version != 1:
        raise CheckpointError(f"{src}: unknown checkpoint version {version!r}")
    state = payload.get("state_dict")
    if not isinstance(state, dict):
        raise CheckpointError(f"{src}: no state_dict")
    meta = _plain(dict(payload.get("meta") or {}))
    new = {"format": FORMAT, "version": VERSION,
           "state_dict": {str(k): v.detach().clone() for k, v in state.items()}, "meta": meta}
    _check_plain(new["meta"])
    if dst == src:
        backup = src.with_name(src.name + ".v1.bak")
        backup.write_bytes(src.read_bytes())
    _write_atomic(dst, new)
    load_supernet(dst)  # proves the result reads weights-only and fits its space
    return {"source": str(src), "out": str(dst), "from_version": 1, "converted": True}
