"""Pydantic models of the API's request and response bodies (docs/api.md)."""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Annotated, Any, Literal

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from server.jobs.status import SearchStatus

HardwareKind = Literal["cpu", "mobile-gpu", "jetson", "server-gpu"]

# Every id column is an INTEGER (server/models.py): ids outside 1..2**31-1 name nothing, and are
# refused by the schema (422) before they reach a database driver that would overflow on them.
MAX_ID = 2**31 - 1
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
IdQuery = Annotated[int, Query(ge=1, le=MAX_ID)]
OptionalIdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]
# Free text stored or echoed (names, keys): no control characters (PostgreSQL refuses NUL, and
# none belongs in a name).
NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"
Name = Annotated[str, Field(min_length=1, max_length=128, pattern=NO_CONTROL)]


def _check_text(value: Any, where: str) -> None:
    """Refuse NUL and lone surrogates anywhere in a request body (nested keys and values too):
    JSON can spell both, but neither can be stored as text (PostgreSQL, UTF-8)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{where}contains a NUL character")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{where}contains a lone surrogate (not valid Unicode text)") from None
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_text(k, where)
            _check_text(v, where)
    elif isinstance(value, list | tuple):
        for v in value:
            _check_text(v, where)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        _check_text(value, "")  # per field, so the 422 names it
        return value


class ProblemDetails(BaseModel):
    """RFC 9457 problem details: the body of every error answer (``application/problem+json``)."""

    type: str = Field(description="a URI naming the kind of problem")
    title: str
    status: int
    detail: str = Field(description="what went wrong, for a person")
    field: str | None = Field(None, description="the request field at fault (dotted path), if one is")
    errors: list[dict[str, Any]] | None = Field(None, description="every invalid field (422 only)")


class TeamCreate(Strict):
    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class TeamOut(BaseModel):
    id: int
    name: str


class TeamCreated(TeamOut):
    api_key: str


# LiteRT delegates an agent can apply (profilers.litert.DELEGATES; kept here so that the API needs no
# profiler import): xnnpack (CPU), none (builtin kernels), gpu, external (the agent's --delegate-library)
LITERT_DELEGATES = ("xnnpack", "none", "gpu", "external")


class Runtime(Strict):
    """What a target's agents measure with. Only what the agent can measure is accepted: it runs
    onnxruntime (any execution provider) on ONNX units, LiteRT (a delegate of ``LITERT_DELEGATES``
    as ``provider``, default xnnpack) on .tflite units, fp32 or int8, or TensorRT (trtexec builds the
    ONNX units into engines; ``provider`` names the device, default ``tensorrt``) at fp32, fp16 or
    int8; a torch target, or fp16 on another backend, would be served units of another runtime, so
    it is a 422 until a backend for it exists."""

    backend: Literal["onnxruntime", "litert", "tensorrt"] = Field(
        "onnxruntime", description="the agent's runtime: onnxruntime (ONNX units), litert (.tflite units) or "
        "tensorrt (ONNX units built into engines by trtexec on the device)")
    provider: str = Field("CPUExecutionProvider", min_length=1, max_length=64, pattern=NO_CONTROL,
                          description="onnxruntime: the execution provider; litert: the delegate (xnnpack, "
                          "none, gpu or external; default xnnpack)")
    threads: int = Field(1, ge=0, le=256)
    precision: Literal["fp32", "fp16", "int8"] = Field(
        "fp32", description="fp32, or int8 (static QDQ units; LiteRT: full-integer); fp16: tensorrt only (the "
        "engine builder converts fp32 units; no other backend has an fp16 unit path)")
    graph_optimization: Literal["disable", "basic", "extended", "all"] = Field(
        "all", description="onnxruntime's level; litert: all only (its converter optimises the graph)")

    @field_validator("precision")
    @classmethod
    def _fp16_on_tensorrt(cls, precision: str, info: ValidationInfo) -> str:
        # a field validator (backend is validated first), so the 422 names runtime.precision
        backend = info.data.get("backend", "onnxruntime")
        if precision == "fp16" and backend != "tensorrt":
            raise ValueError(f"precision fp16 is measured by the tensorrt backend only, not {backend}")
        return precision

    @model_validator(mode="after")
    def _tensorrt(self) -> Runtime:
        if self.backend != "tensorrt":
            return self
        if "provider" not in self.model_fields_set:
            self.provider = "tensorrt"  # the agent's default name for its device
        if self.graph_optimization != "all":
            raise ValueError(f"tensorrt has no graph optimisation levels: graph_optimization must be 'all', "
                             f"got {self.graph_optimization!r}")
        return self

    @model_validator(mode="after")
    def _litert(self) -> Runtime:
        if self.backend != "litert":
            return self
        if "provider" not in self.model_fields_set:
            self.provider = "xnnpack"  # LiteRT's CPU default, as the agent's
        if self.provider not in LITERT_DELEGATES:
            raise ValueError(f"litert delegate (provider) must be one of {', '.join(LITERT_DELEGATES)}, "
                             f"got {self.provider!r}")
        if self.graph_optimization != "all":
            raise ValueError(f"litert has no graph optimisation levels: graph_optimization must be 'all', "
                             f"got {self.graph_optimization!r}")
        return self


class HardwareCreate(Strict):
    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    kind: HardwareKind
    runtime: Runtime = Field(default_factory=Runtime)
    space: Literal["paper", "code"] = "paper"
    transfer_from: Id | None = Field(None, description="start from this target's complete table: the agents "
                                     "measure only the per-run overhead and transfer_measure whole subnets, and "
                                     "the table is fitted from them (docs/latency.md, transfer)")
    transfer_measure: int = Field(20, ge=2, le=200, description="with transfer_from: subnets measured (K)")


class Coverage(BaseModel):
    measured: int
    total: int
    fraction: float


class CoverageDetail(Coverage):
    missing_sample: list[str]


class DriftReading(BaseModel):
    round: int
    at: str
    speed: float = Field(description="the anchors' median time now / at the baseline (> 1: the device runs slower)")
    se: float | None = Field(None, description="standard error of the log ratios over the anchors")
    moved: bool = Field(description="whether the anchors agree the speed moved (beyond 2 se and 2%)")


class DriftOut(BaseModel):
    """Drift probes of a target (``LUTNAS_DRIFT_INTERVAL_S``): its anchor subnets re-measured by its
    agents on a schedule, and the scale its predictions carry from the last round."""

    anchors: int = Field(description="anchor subnets measured each round")
    round: int = Field(description="the current round (1: the baseline, measured right after the units)")
    baseline_at: str | None = None
    last_round_at: str | None = None
    speed: float | None = Field(None, description="the last finished round's speed against the baseline")
    speed_se: float | None = None
    moved: bool = False
    applied_scale: float = Field(1.0, description="what the target's predictions are multiplied by now")
    history: list[DriftReading] = Field(default_factory=list)


class HardwareOut(BaseModel):
    id: int
    name: str
    kind: str
    runtime: dict[str, Any]
    space: str
    created_at: dt.datetime
    coverage: Coverage
    drift: DriftOut | None = Field(None, description="drift probes, once the table is complete and they are on")


class AgentTokenCreate(Strict):
    name: Name


class AgentTokenOut(BaseModel):
    id: int
    hardware_id: int
    name: str
    token: str


class LeaseRequest(Strict):
    max_units: int = Field(8, ge=1, le=256)
    lease_seconds: float | None = Field(None, gt=0, le=86400)


class LeasedUnit(BaseModel):
    key: str
    onnx_url: str = Field(description="where to download the unit's model (in `format`; the name is historical)")
    format: Literal["onnx", "tflite"] = Field("onnx", description="the model's format: onnx, or tflite for "
                                              "LiteRT targets")


class LeaseOut(BaseModel):
    lease_id: str
    expires_at: dt.datetime
    units: list[LeasedUnit]
    remaining: int = Field(description="units of this target not measured yet (leased ones included)")
    runtime: dict[str, Any] = Field(description="the target's runtime; agents must measure with it")


class UnitResult(Strict):
    unit_key: str = Field(min_length=1, max_length=255, pattern=NO_CONTROL)
    median_ms: float = Field(ge=0)
    p10_ms: float = Field(ge=0)
    p90_ms: float = Field(ge=0)
    iqr_ms: float = Field(ge=0)
    count: int = Field(ge=1, le=MAX_ID)
    env: dict[str, Any] = Field(default_factory=dict)
    p99_ms: float | None = Field(None, ge=0, description="tail latency; older agents send none")

    @model_validator(mode="after")
    def _consistent(self) -> UnitResult:
        values = (self.median_ms, self.p10_ms, self.p90_ms, self.iqr_ms)
        if not all(math.isfinite(v) for v in values):
            raise ValueError("timings must be finite numbers")
        if not self.p10_ms <= self.median_ms <= self.p90_ms:
            raise ValueError("need p10_ms <= median_ms <= p90_ms")
        if self.p99_ms is not None and not (math.isfinite(self.p99_ms) and self.p90_ms <= self.p99_ms):
            raise ValueError("need p90_ms <= p99_ms")
        if len(json.dumps(self.env, default=str)) > 16_384:  # stored per unit: a device gets no free disk
            raise ValueError("env is larger than 16 KB")
        return self


class ResultsUpload(Strict):
    lease_id: str = Field(min_length=1, max_length=64, pattern=NO_CONTROL)
    results: list[UnitResult] = Field(max_length=1024)


class ResultsOut(BaseModel):
    stored: int
    duplicates: int


class HeartbeatRequest(Strict):
    lease_id: str = Field(min_length=1, max_length=64, pattern=NO_CONTROL)


class HeartbeatOut(BaseModel):
    expires_at: dt.datetime


class LatencyEntryOut(BaseModel):
    unit_key: str
    median_ms: float
    p10_ms: float
    p90_ms: float
    p99_ms: float | None = None  # null for entries measured before units kept their p99
    iqr_ms: float
    count: int
    measured_at: dt.datetime
    # boundary reorder shares the agent traced (docs/latency.md, "Layout correction"); null when
    # the runtime has none to trace or the entry predates them
    layout: dict[str, float] | None = None
    conditions: dict[str, float] | None = Field(None, description="the device's state while the unit was timed "
                                                "(profilers/conditions.py): other_load_cores, steal_cores, freq_mhz, "
                                                "max_freq_mhz, temp_c, wall_s where the device exposes them; null for "
                                                "entries measured before they were recorded")


class PredictRequest(Strict):
    architectures: list[Annotated[str, Field(max_length=256)] | dict[str, Any]] = Field(min_length=1, max_length=10_000)


class Prediction(BaseModel):
    id: str
    lighttrack: str
    latency_ms: float


class PredictOut(BaseModel):
    predictions: list[Prediction]


class SupernetCreate(Strict):
    name: Name
    checkpoint_path: str = Field(min_length=1, max_length=4096, pattern=NO_CONTROL)
    data_path: str = Field(min_length=1, max_length=4096, pattern=NO_CONTROL)


class SupernetEnsembleCreate(Strict):
    name: Name
    members: list[Id] = Field(min_length=2, max_length=8, description=(
        "the team's supernets to average, first the one whose weights an export inherits and whose validation "
        "data every member scores on; they must share a search space"))


class SupernetOut(BaseModel):
    id: int
    name: str
    space: dict[str, Any]
    members: list[int] | None = Field(None, description=(
        "for an ensemble, the supernets whose mean score a search on it ranks with (docs/validation.md); "
        "null for one supernet"))
    created_at: dt.datetime


class SearchCreate(Strict):
    supernet_id: Id
    hardware_ids: list[Id] = Field(min_length=1, max_length=8)
    objective: Literal["pareto", "budget"] = "pareto"
    budget_ms: float | None = Field(None, gt=0, le=1e6)
    budget_hardware_id: Id | None = None
    population: int = Field(16, ge=4, le=512)
    generations: int = Field(4, ge=1, le=200)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    mode: Literal["pairs", "sequences"] = "pairs"
    latency_stat: Literal["p50", "p90"] = Field(
        "p50", description="the latency statistic of the objective and the budget: p50 (the sum of unit medians) "
        "or p90 (the tail, for a budget that must hold 9 frames in 10: the median plus the root sum of squares "
        "of the units' p90 - median spreads)")
    use_predictor: bool = False
    missing_units: Literal["wait", "fail"] = "wait"
    unit_wait_deadline_s: float | None = Field(
        None, gt=0, le=30 * 86400, description="with missing_units 'wait': fail after waiting this many seconds "
        "for latency units (default: the server's LUTNAS_UNIT_WAIT_DEADLINE_S)")

    @field_validator("hardware_ids")
    @classmethod
    def _unique(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError("hardware_ids must not repeat")
        return v

    @model_validator(mode="after")
    def _budget(self) -> SearchCreate:
        if self.objective == "budget":
            if self.budget_ms is None:
                raise ValueError("objective 'budget' needs budget_ms")
            if self.budget_hardware_id is None:
                self.budget_hardware_id = self.hardware_ids[0]
            if self.budget_hardware_id not in self.hardware_ids:
                raise ValueError("budget_hardware_id must be one of hardware_ids")
        return self


class Progress(BaseModel):
    generation: int = 0
    generations: int = 0
    evaluated: int = 0
    cache_hits: int = Field(0, description="candidates whose score came from the score cache (earlier "
                            "searches of the same supernet and mode)")
    scored: int = Field(0, description="candidates this search scored itself; scored + cache_hits = evaluated")
    best_score: float | None = None
    front_size: int = 0
    hypervolume: float | None = Field(None, description="the search front's normalised hypervolume (objectives "
                                      "1 - score and latency / reference latency per target, reference point "
                                      "(1, 1, ...)); for a single-target search the pareto endpoint's "
                                      "hypervolume")
    fraction: float = 0.0
    note: str | None = None


class SearchOut(BaseModel):
    id: int
    status: SearchStatus
    request: dict[str, Any]
    progress: Progress
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    error: str | None
    timings: dict[str, float] = Field(default_factory=dict)


class ResultItem(BaseModel):
    rank: int
    architecture_id: str
    lighttrack: str
    score: float
    score_se: float | None = Field(None, description="standard error of the score (over validation pairs "
                                   "or sequences); null for results stored before it was kept")
    latency_ms: dict[str, float]
    flops: int | None
    params: int | None
    feasible: bool


class FrontPointOut(BaseModel):
    architecture_id: str
    lighttrack: str
    score: float
    score_se: float | None = Field(None, description="standard error of the score; null where unknown")
    latency_ms: float
    predicted_ms: float = Field(description="the latency the search used (the table's prediction; = latency_ms)")
    measured_ms: float | None = Field(None, description="measured end to end by the target's agents after the "
                                      "search (closed loop); null until measured")
    over_budget: bool | None = Field(None, description="the measurement breaks the search's latency budget on "
                                     "this target; null without a budget or a measurement")


class ReferenceArchOut(BaseModel):
    """LightTrack-Mobile's own point on this hardware: what the front is measured against."""

    name: str = "LightTrack-Mobile"
    architecture_id: str
    lighttrack: str
    score: float = Field(description="its supernet validation score, as the front's scores")
    score_se: float | None = None
    latency_ms: float = Field(description="its predicted latency on this hardware (ms)")


class ParetoOut(BaseModel):
    hardware_id: int
    reference_point: dict[str, float] = Field(description="hypervolume reference point: score 0 and R, the "
                                              "largest reference latency of the searches on this target (ms)")
    hypervolume: float = Field(description="normalised hypervolume of the front: objectives 1 - score and "
                               "latency / R, reference point (1, 1), a fraction of the unit box; the search's "
                               "own figure (progress, ranked.json) for a single-target search "
                               "(search.pareto.target_hypervolume)")
    hypervolume_score_ms: float = Field(description="the same area in score x ms, dominated up to "
                                        "(score 0, R): hypervolume * R")
    reference: ReferenceArchOut | None = Field(None, description="LightTrack-Mobile's point (null for "
                                               "searches finished before it was recorded)")
    budget_ms: float | None = Field(None, description="the latency budget on this target the searches ran under")
    measured: int = Field(0, description="points measured end to end by the target's agents so far")
    points: list[FrontPointOut]


class ArchScore(BaseModel):
    supernet_id: int
    search_id: int
    score: float
    score_se: float | None = Field(None, description="standard error of the score (null for scores stored before 0002)")


class ArchitectureOut(BaseModel):
    id: str
    lighttrack: str
    arch: dict[str, Any]
    flops: int | None
    params: int | None
    latency_ms: dict[str, float]
    scores: list[ArchScore]
