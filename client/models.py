"""Pydantic models mirroring the REST API's resources (docs/api.md).

Models accept fields the contract does not (yet) name (``extra="allow"``), so a newer server
does not break an older client; the documented fields are typed.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

HardwareKind = Literal["cpu", "mobile-gpu", "jetson", "server-gpu"]
ExportFormat = Literal["lighttrack", "json", "onnx"]


class SearchStatus(StrEnum):
    """A search job's state; each member equals its wire value (``SearchStatus.failed == "failed"``).
    The same values as the server's enum (tests/client/test_models_openapi.py keeps them equal)."""

    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


#: Statuses after which a search never changes again.
TERMINAL_STATUSES: frozenset[str] = frozenset(
    {SearchStatus.succeeded, SearchStatus.failed, SearchStatus.cancelled})


class APIModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Team(APIModel):
    id: int
    name: str
    api_key: str | None = None  # shown once, at creation


class Me(APIModel):
    id: int
    name: str


class Runtime(APIModel):
    """How the target runs models; part of the latency table's identity."""

    backend: str = "onnxruntime"
    provider: str = "CPUExecutionProvider"
    threads: int = 1
    precision: str = "fp32"
    graph_optimization: str = "all"


class Coverage(APIModel):
    measured: int
    total: int
    fraction: float
    missing_sample: list[str] = Field(default_factory=list)


class DriftReading(APIModel):
    round: int
    at: str
    speed: float
    se: float | None = None
    moved: bool = False


class Drift(APIModel):
    """Drift probes of a target: its anchor subnets re-measured on a schedule, and the scale its
    predictions carry from the last round (``applied_scale``)."""

    anchors: int
    round: int
    baseline_at: str | None = None
    last_round_at: str | None = None
    speed: float | None = None
    speed_se: float | None = None
    moved: bool = False
    applied_scale: float = 1.0
    history: list[DriftReading] = Field(default_factory=list)


class Hardware(APIModel):
    id: int
    name: str
    kind: str
    runtime: Runtime
    space: str = "paper"
    created_at: datetime | None = None
    coverage: Coverage | None = None
    drift: Drift | None = None  # drift probes, once the table is complete and the service runs them


class AgentToken(APIModel):
    id: int
    hardware_id: int
    name: str
    token: str | None = None  # shown once, at creation


class LatencyEntry(APIModel):
    unit_key: str
    median_ms: float
    p10_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None  # None where the table kept no p99
    iqr_ms: float | None = None
    count: int | None = None
    measured_at: datetime | None = None
    layout: dict[str, float] | None = None  # boundary reorder shares (docs/latency.md)
    conditions: dict[str, float] | None = None  # the device's state while timed (other load, clock, temperature)


class Prediction(APIModel):
    id: str
    lighttrack: str
    latency_ms: float


class Supernet(APIModel):
    id: int
    name: str
    space: dict[str, Any] | str | None = None  # the supernet's search space (as the server describes it)
    members: list[int] | None = None  # an ensemble's supernets (a search on it ranks with their mean score)
    created_at: datetime | None = None


class SearchProgress(APIModel):
    generation: int = 0
    generations: int = 0
    evaluated: int = 0
    cache_hits: int = 0
    scored: int = 0  # scored by this search itself; scored + cache_hits = evaluated
    best_score: float | None = None
    front_size: int = 0
    hypervolume: float | None = None  # the search front's normalised hypervolume (as ranked.json's)
    fraction: float = 0.0
    note: str | None = None  # why a queued search waits (e.g. for latency-table units), if it does


class SearchInfo(APIModel):
    """A search job as ``GET /v1/searches/{id}`` returns it."""

    id: int
    status: str  # one of SearchStatus; kept open so a newer server's status does not break us
    request: dict[str, Any] = Field(default_factory=dict)
    progress: SearchProgress = Field(default_factory=SearchProgress)
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    timings: dict[str, float] = Field(default_factory=dict)  # seconds: queued_s, running_s, total_s, phases


class SearchResult(APIModel):
    """One ranked architecture of a search; ``latency_ms`` is keyed by hardware id (as text)."""

    rank: int
    architecture_id: str
    lighttrack: str
    score: float | None = None
    score_se: float | None = None  # standard error of the score (None where the server has none)
    latency_ms: dict[str, float | None] = Field(default_factory=dict)
    flops: int | None = None
    params: int | None = None
    feasible: bool | None = None


class ParetoPoint(APIModel):
    architecture_id: str
    lighttrack: str
    score: float
    score_se: float | None = None  # standard error of the score
    latency_ms: float
    predicted_ms: float | None = None  # what the search used (= latency_ms)
    measured_ms: float | None = None  # measured end to end by the target's agents after the search
    over_budget: bool | None = None  # the measurement breaks the search's budget (None: no budget/measurement)


class ParetoReference(APIModel):
    """LightTrack-Mobile's own point on the front's hardware: what the search bought is read
    against it."""

    name: str = "LightTrack-Mobile"
    architecture_id: str
    lighttrack: str
    score: float
    score_se: float | None = None
    latency_ms: float


class ParetoFront(APIModel):
    hardware_id: int
    reference_point: Any = None  # the hypervolume's reference point: score 0, latency R (ms)
    hypervolume: float | None = None  # normalised: 1 - score and latency / R against (1, 1), as the search's own
    hypervolume_score_ms: float | None = None  # the same area in score x ms: hypervolume * R
    reference: ParetoReference | None = None  # LightTrack-Mobile's point (None from older searches)
    budget_ms: float | None = None  # the latency budget the searches ran under on this hardware
    measured: int = 0  # points measured end to end by the target's agents so far
    points: list[ParetoPoint] = Field(default_factory=list)


class ArchitectureScore(APIModel):
    supernet_id: int | None = None
    search_id: int | None = None
    score: float | None = None
    score_se: float | None = None  # standard error of the score


class ArchitectureInfo(APIModel):
    id: str
    lighttrack: str
    arch: dict[str, Any] = Field(default_factory=dict)
    flops: int | None = None
    params: int | None = None
    latency_ms: dict[str, float | None] = Field(default_factory=dict)
    scores: list[ArchitectureScore] = Field(default_factory=list)


class Page(APIModel):
    items: list[dict[str, Any]]
    next_page_token: str | None = None
