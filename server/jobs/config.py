"""A stored search request, parsed once: the job's typed request and its search configuration.

``searches.request`` holds ``SearchCreate.model_dump(mode="json")``, so the API's request schema
is also the one place the worker's defaults come from: a request stored before a field existed
gets that field's default.
"""

from __future__ import annotations

from typing import Any

from search.config import SearchConfig
from server.schemas import SearchCreate

MAX_PARENTS = 10


def parse_request(stored: dict[str, Any]) -> SearchCreate:
    """The stored request as the API validated it; keys no longer in the schema are ignored."""
    return SearchCreate.model_validate({k: v for k, v in stored.items() if k in SearchCreate.model_fields})


def search_config(req: SearchCreate, space: str, batch_size: int) -> SearchConfig:
    """The search ``req`` asks for over the hardware's ``space``, scoring ``batch_size`` at a time."""
    budget = req.objective == "budget"
    return SearchConfig(
        algorithm="pareto" if req.objective == "pareto" else "evolution",
        budget_ms=req.budget_ms if budget else None,
        target=str(req.budget_hardware_id) if budget else None,
        population=req.population, generations=req.generations, parents=min(MAX_PARENTS, req.population),
        seed=req.seed, predictor=req.use_predictor, space=space, batch_size=batch_size)
