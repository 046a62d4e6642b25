"""Service configuration from ``LUTNAS_*`` environment variables (pydantic at the edge).

pydantic-settings is not a dependency, so :meth:`Settings.from_env` reads the environment
itself; every field can also be passed explicitly (tests build a ``Settings`` directly).
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field, field_validator

from tracking.devices import check_device


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


class Settings(BaseModel):
    database_url: str = Field(default_factory=default_database_url)
    admin_token: str | None = None
    max_upload_mb: float = Field(200.0, gt=0)
    # short leases kept alive by the agent's heartbeat (every quarter of the lease): a dead agent's
    # units go back to the pool within this long
    lease_seconds: float = Field(30.0, gt=0, description="default agent lease length")
    max_lease_seconds: float = Field(3600.0, gt=0)
    heartbeat_seconds: float = Field(5.0, gt=0, description="worker heartbeat interval")
    heartbeat_timeout: float = Field(60.0, gt=0, description="a running job silent this long is re-queued")
    poll_seconds: float = Field(1.0, gt=0, description="worker idle poll interval")
    data_dir: Path = Field(default_factory=default_data_dir, description="uploads and the unit ONNX cache")
    # Folders under which a TEAM may register a supernet by server-side path (JSON body). Empty:
    # teams upload files; only the admin endpoint registers by path. Uploads (under data_dir)
    # are never reachable this way, whatever the roots say.
    data_roots: list[Path] = Field(default_factory=list, description="roots teams may register server paths under")
    max_archive_members: int = Field(20_000, ge=1, description="files in one uploaded data archive")
    max_extract_mb: float = Field(1024.0, gt=0, description="total unpacked size of one uploaded data archive")
    # Comma-separated unit-key prefixes/keys; when set, only matching units are profiling work.
    # Meant for tests and small demos (the full paper space has a few hundred units).
    unit_filter: list[str] | None = None
    # Validation scoring of the worker (tracking.validate.ValidationScorer); smaller is faster
    # and noisier. Scores are cached per (supernet, mode, architecture), so keep these fixed.
    scorer_pairs: int = Field(256, ge=1)
    scorer_bn_batches: int = Field(2, ge=0)
    scorer_bn_batch_size: int = Field(32, ge=1)
    scorer_max_sequences: int = Field(20, ge=1)
    scorer_max_frames: int = Field(50, ge=2)
    torch_threads: int | None = Field(None, ge=1, description="torch intra-op threads of the worker")
    device: str = Field("auto", description="scoring device of the worker: auto, cpu, cuda, cuda:N")
    # Candidate scoring on Ray (search/ray_pool.py): LUTNAS_RAY_ADDRESS names a cluster this machine
    # is a node of (HOST:PORT) or ray://HOST:10001; unset with LUTNAS_EVAL_WORKERS > 1 starts a local
    # Ray. Unset and 1: the worker scores in its own process.
    ray_address: str | None = Field(None, description="Ray cluster scoring the candidates")
    eval_workers: int = Field(1, ge=1, le=1024, description="Ray actors scoring candidates (1 without an "
                              "address: in-process)")
    eval_threads: int = Field(1, ge=1, description="torch threads per CPU Ray actor")
    ray_retry_seconds: float = Field(30.0, gt=0, description="a job whose Ray cluster went away is retried "
                                     "this often (it resumes from its last finished generation)")
    missing_units_retry_seconds: float = Field(5.0, gt=0, description="a waiting job is re-checked this often")
    # A search waiting for latency units fails after this long (no agent, or a table that never
    # completes); 0 waits forever. Env: LUTNAS_UNIT_WAIT_DEADLINE_S.
    unit_wait_deadline_s: float = Field(86400.0, ge=0, description="seconds a search waits for latency units")
    # Searches one team may have queued at once; one more is refused with 429.
    max_queued_searches: int = Field(100, ge=1, description="queued searches per team")
    # Architectures per scoring batch of the worker: a stop (SIGTERM, cancel) lands between
    # batches, and each batch's scores reach the score cache as soon as it is done.
    eval_batch_size: int = Field(16, ge=1, le=4096, description="architectures per scoring batch")
    # Threads running the synchronous endpoints of one API process (anyio's default is 40). The
    # endpoints are short, CPU-bound Python; more threads than cores only fight over the GIL.
    api_threads: int = Field(4, ge=1, description="threads serving sync endpoints in one API process")
    api_heavy_threads: int = Field(2, ge=1, description="threads for ONNX exports and uploads (deps.run_heavy)")

    @field_validator("device")
    @classmethod
    def _check_device(cls, v: str) -> str:
        return check_device(v)  # form only: whether the GPU exists is the worker's question

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env = os.environ
        values: dict[str, object] = {}
        # every scalar field is read from LUTNAS_<FIELD NAME>; the two lists are parsed below
        for field in cls.model_fields:
            var = f"LUTNAS_{field.upper()}"
            if field not in ("unit_filter", "data_roots") and env.get(var):
                values[field] = env[var]
        if env.get("LUTNAS_UNIT_FILTER"):
            values["unit_filter"] = [s.strip() for s in env["LUTNAS_UNIT_FILTER"].split(",") if s.strip()]
        if env.get("LUTNAS_DATA_ROOTS"):  # os.pathsep-separated, like PATH (commas also accepted)
            raw = env["LUTNAS_DATA_ROOTS"].replace(",", os.pathsep)
            values["data_roots"] = [s.strip() for s in raw.split(os.pathsep) if s.strip()]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(values)

    @property
    def max_extract_bytes(self) -> int:
        return int(self.max_extract_mb * 1024 * 1024)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)
