"""Service configuration from ``LUTNAS_*`` environment variables (pydantic-settings at the edge).

:class:`Settings` is a ``pydantic_settings.BaseSettings``: every field is read from
``LUTNAS_<FIELD>`` (``data_dir``: ``LUTNAS_DATA_DIR``) by :meth:`Settings.from_env`, the entry of
``lutnas serve|worker|admin``. Building a ``Settings(...)`` directly reads only its arguments,
never the environment, so a test (or a library caller) gets exactly what it passes, whatever
``LUTNAS_*`` its process happens to have.

``python -m server.settings`` prints the Markdown table of the variables generated from the
fields (type, default, description); docs/deployment.md holds it, and a test keeps the two equal.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import NoneType, UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import Field, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from tracking.devices import check_device

ENV_PREFIX = "LUTNAS_"


def default_database_url() -> str:
    """SQLite file under ``~/.lutnas/`` (or ``./lutnas.db`` when the home is not writable)."""
    home = Path("~/.lutnas").expanduser()
    try:
        home.mkdir(parents=True, exist_ok=True)
        path = home / "lutnas.db"
    except OSError:
        path = Path("lutnas.db").resolve()
    return f"sqlite:///{path}"


def default_data_dir() -> Path:
    return Path("~/.lutnas").expanduser()


def _split(value: object, separators: str) -> object:
    """A string from the environment as a list (items stripped, empty ones dropped); lists pass."""
    if not isinstance(value, str):
        return value
    for sep in separators[1:]:
        value = value.replace(sep, separators[0])
    return [s.strip() for s in value.split(separators[0]) if s.strip()]


class Settings(BaseSettings):
    # An empty variable (LUTNAS_<FIELD>=) means unset; LUTNAS_* variables that are no field (the
    # client's, the logging ones of server/logs.py) are not ours to refuse.
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_ignore_empty=True, extra="ignore")

    database_url: str = Field(default_factory=default_database_url, description=(
        "SQLAlchemy URL; PostgreSQL: `postgresql+psycopg://user:pass@host:5432/db`"))
    admin_token: str | None = Field(None, description=(
        "bearer token of the admin REST endpoints (`POST /v1/teams`); unset: those answer 404"))
    max_upload_mb: float = Field(200.0, gt=0, description=(
        "largest accepted upload (checkpoint, data archive); larger: 413"))
    # short leases kept alive by the agent's heartbeat (every quarter of the lease): a dead agent's
    # units go back to the pool within this long
    lease_seconds: float = Field(30.0, gt=0, description=(
        "default length of an agent's lease on units (agents renew it every quarter of it while measuring)"))
    max_lease_seconds: float = Field(3600.0, gt=0, description="longest lease an agent may ask for")
    # Drift probes (server/measurements/drift.py): a shared or throttled device changes speed over minutes; its
    # agents re-measure a few anchor subnets this often and the table follows the speed they see
    drift_interval_s: float = Field(0.0, ge=0, description=(
        "seconds between drift-probe rounds: once a target's table is complete its agents re-measure "
        "`drift_anchors` whole subnets this often and its predictions follow the host's speed (0: off; "
        "the compose deployment sets 1800)"))
    drift_anchors: int = Field(4, ge=3, le=16, description="anchor subnets per drift-probe round")
    heartbeat_seconds: float = Field(5.0, gt=0, description="how often a worker stamps its running job")
    heartbeat_timeout: float = Field(60.0, gt=0, description=(
        "a running job silent this long is re-queued (and resumes from its last generation)"))
    poll_seconds: float = Field(1.0, gt=0, description="idle worker's poll interval for new jobs")
    data_dir: Path = Field(default_factory=default_data_dir, description=(
        "uploads (`supernets/`) and the unit ONNX cache (`units/`); must be shared by server and "
        "workers; never reachable by a team's server path"))
    # Folders under which a TEAM may register a supernet by server-side path (JSON body). Empty:
    # teams upload files; only the admin endpoint registers by path. Uploads (under data_dir)
    # are never reachable this way, whatever the roots say.
    data_roots: Annotated[list[Path], NoDecode] = Field(default_factory=list, description=(
        "folders (separated by `:` like `PATH`, or by commas) under which a TEAM may register a "
        "supernet by server-side path (`POST /v1/supernets` JSON); unset: teams upload, and only the "
        "admin endpoint `POST /v1/admin/teams/{id}/supernets` registers by path (docs/security.md)"))
    max_archive_members: int = Field(20_000, ge=1, description="entries in one uploaded data archive; more: 422")
    max_extract_mb: float = Field(1024.0, gt=0, description=(
        "total unpacked size of one uploaded data archive; more: 422, checked before anything is written"))
    # Comma-separated unit-key prefixes/keys; when set, only matching units are profiling work.
    # Meant for tests and small demos (the full paper space has a few hundred units).
    unit_filter: Annotated[list[str] | None, NoDecode] = Field(None, description=(
        "comma-separated unit-key prefixes; only matching units are profiling work (tests, small demos)"))
    # Validation scoring of the worker (tracking.validate.ValidationScorer); smaller is faster
    # and noisier. Scores are cached per (supernet, mode, architecture), so keep these fixed.
    scorer_pairs: int = Field(256, ge=1, description="validation pairs per architecture score (pairs mode)")
    scorer_bn_batches: int = Field(2, ge=0, description=(
        "batches that recalibrate a subnet's BatchNorm statistics before it is scored"))
    scorer_bn_batch_size: int = Field(32, ge=1, description="size of those BatchNorm batches")
    scorer_max_sequences: int = Field(20, ge=1, description="sequences scored per architecture (sequences mode)")
    scorer_max_frames: int = Field(50, ge=2, description="frames per sequence (sequences mode)")
    scorer_runtime: Literal["torch", "onnx"] = Field("torch", description=(
        "what runs the tracking loop in sequences mode: `torch`, or `onnx` (each candidate's path exported "
        "to onnxruntime on the CPU, about half the time per frame)"))
    torch_threads: int | None = Field(None, ge=1, description=(
        "torch intra-op threads of a worker; unset: torch's default"))
    device: str = Field("auto", description="scoring device of the worker: `auto`, `cpu`, `cuda`, `cuda:N`")
    # Candidate scoring on Ray (search/ray_pool.py): LUTNAS_RAY_ADDRESS names a cluster this machine
    # is a node of (HOST:PORT) or ray://HOST:10001; unset with LUTNAS_EVAL_WORKERS > 1 starts a local
    # Ray. Unset and 1: the worker scores in its own process.
    ray_address: str | None = Field(None, description=(
        "Ray cluster that scores the candidates: `HOST:PORT` of a cluster this machine is a node of, "
        "or `ray://HOST:10001` (Ray Client)"))
    eval_workers: int = Field(1, ge=1, le=1024, description=(
        "Ray actors scoring a job's candidates; `1` without `LUTNAS_RAY_ADDRESS`: the worker scores in "
        "its own process; more without an address: a local Ray started on demand"))
    eval_threads: int = Field(1, ge=1, description="torch threads per CPU Ray actor (a GPU actor takes one GPU)")
    ray_retry_seconds: float = Field(30.0, gt=0, description=(
        "a job whose Ray cluster went away is tried again this often (it resumes from its last "
        "finished generation)"))
    missing_units_retry_seconds: float = Field(5.0, gt=0, description=(
        "how often a job waiting for unmeasured latency units is re-checked"))
    # A search waiting for latency units fails after this long (no agent, or a table that never
    # completes); 0 waits forever.
    unit_wait_deadline_s: float = Field(86400.0, ge=0, description=(
        "a search waiting for latency units fails after this long, naming the missing units "
        "(0: wait forever); per search: `unit_wait_deadline_s`"))
    max_queued_searches: int = Field(100, ge=1, description=(
        "queued searches per team; one more is refused with 429 problem+json (`Retry-After: 30`)"))
    # The closed loop (server.measurements.verification): a finished search's front architectures are queued
    # for the target's agents to measure end to end; the target's calibration is refit from them.
    verify_front_points: int = Field(16, ge=0, le=1000, description=(
        "architectures of each target's front queued for its agents to measure end to end after a "
        "search (closed loop: `measured_ms` on front points, calibration refit); 0 turns it off"))
    # Architectures per scoring batch of the worker: a stop (SIGTERM, cancel) lands between
    # batches, and each batch's scores reach the score cache as soon as it is done.
    eval_batch_size: int = Field(16, ge=1, le=4096, description=(
        "architectures per scoring batch: stops land between batches, and each batch's scores "
        "reach the score cache at once"))
    # Threads running the synchronous endpoints of one API process (anyio's default is 40). The
    # endpoints are short, CPU-bound Python; more threads than cores only fight over the GIL.
    api_threads: int = Field(4, ge=1, description="threads serving sync endpoints in one API process")
    api_heavy_threads: int = Field(2, ge=1, description="threads for ONNX exports and uploads in one API process")

    @field_validator("device")
    @classmethod
    def _check_device(cls, v: str) -> str:
        return check_device(v)  # form only: whether the GPU exists is the worker's question

    @field_validator("unit_filter", mode="before")
    @classmethod
    def _split_unit_filter(cls, v: object) -> object:
        return _split(v, ",")

    @field_validator("data_roots", mode="before")
    @classmethod
    def _split_data_roots(cls, v: object) -> object:
        return _split(v, os.pathsep + ",")  # like PATH; commas also accepted

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)  # the environment only through from_env (module docstring)

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Settings from ``LUTNAS_*``; ``overrides`` that are not None win (command-line options)."""
        values: dict[str, Any] = EnvSettingsSource(cls)()
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def max_extract_bytes(self) -> int:
        return int(self.max_extract_mb * 1024 * 1024)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


# The documentation table. Defaults computed on this machine are shown as what they mean.
_FACTORY_DEFAULTS = {
    default_database_url: "`sqlite:///~/.lutnas/lutnas.db` (`./lutnas.db` when the home is not writable)",
    default_data_dir: "`~/.lutnas`",
    list: "unset",
}
_TYPE_NAMES = {str: "string", int: "integer", float: "number", Path: "path"}


def _type_name(annotation: Any) -> str:
    if get_origin(annotation) in (Union, UnionType):  # X | None: None is the "unset" default
        (annotation,) = (a for a in get_args(annotation) if a is not NoneType)
    if get_origin(annotation) is list:
        return f"list of {_TYPE_NAMES[get_args(annotation)[0]]}s"
    if get_origin(annotation) is Literal:
        return " or ".join(f"`{v}`" for v in get_args(annotation))
    return _TYPE_NAMES[annotation]


def _default_text(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return _FACTORY_DEFAULTS[field.default_factory]
    value = field.default
    if value is None:
        return "unset"
    return f"`{value:g}`" if isinstance(value, float) else f"`{value}`"


def settings_table() -> str:
    """The Markdown table of every ``LUTNAS_*`` setting, in field order."""
    rows = ["| variable | type | default | meaning |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        cells = [f"`{ENV_PREFIX}{name.upper()}`", _type_name(field.annotation), _default_text(field),
                 field.description or ""]
        if any("|" in c for c in cells):  # it would split the row
            raise ValueError(f"{name}: no '|' in a settings table cell")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(settings_table(), end="")
