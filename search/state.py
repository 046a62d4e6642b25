"""The search state: a JSON-serialisable dict, complete after every generation.

It holds the configuration, the generation reached, the current population (exact LightTrack
strings, since digits of blocks that do not run still shape later mutations), every evaluated
architecture with its scores (the evaluation cache, in evaluation order), the RNG state,
counters, the predictor's training ids and its per-generation Spearman figures, the progress
history, and LightTrack-Mobile's reference point once scored (``reference_arch``). Each record
keeps its score's standard error as ``accuracy_se`` (None where the evaluator gives none; states
saved before standard errors existed lack the key and load with None). Resuming from it replays
exactly what an uninterrupted run would do.
"""

from __future__ import annotations

import json
import random
from typing import Any

STATE_VERSION = 1


def rng_to_json(rng: random.Random) -> list[Any]:
    version, internal, gauss = rng.getstate()
    return [version, list(internal), gauss]


def rng_from_json(data: list[Any]) -> random.Random:
    rng = random.Random()  # its state is restored just below (resumable search), not a secret  # nosec B311
    try:
        rng.setstate((int(data[0]), tuple(int(x) for x in data[1]), data[2]))
    except (TypeError, ValueError, IndexError) as e:
        raise ValueError(f"search state has a malformed RNG state: {e}") from None
    return rng


def dumps(state: dict[str, Any]) -> str:
    return json.dumps(state, separators=(",", ":"))


def loads(text: str) -> dict[str, Any]:
    try:
        state = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"search state is not valid JSON: {e}") from None
    check(state)
    return state


def check(state: Any) -> None:
    """Raise ValueError unless ``state`` looks like a search state this version can resume."""
    if not isinstance(state, dict):
        raise ValueError("search state must be a JSON object")
    if state.get("version") != STATE_VERSION:
        raise ValueError(f"search state version {state.get('version')!r} is not {STATE_VERSION}")
    missing = {"config", "generation", "population", "records", "rng", "stats"} - set(state)
    if missing:
        raise ValueError(f"search state lacks {sorted(missing)}")
