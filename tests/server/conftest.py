"""Fixtures of the service tests: databases (SQLite always, PostgreSQL when reachable), a tiny
supernet and dataset, real ``lutnas serve`` / ``lutnas worker`` / ``lutnas-agent`` processes.

PostgreSQL: a fresh ``lutnas_test_<random>`` database per test session on
``LUTNAS_TEST_PG`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``), dropped
at the end; the PostgreSQL cases are skipped when no server answers.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port  # noqa: F401 - re-exported: the server tests import it from here

ADMIN = "test-admin-token"  # this test server's only; not a real secret
PG_ADMIN_URL = os.environ.get("LUTNAS_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
BIN = Path(sys.executable).parent


def pg_unreachable() -> str | None:
    """None when the test PostgreSQL answers, else why not (one line)."""
    try:
        import psycopg

        dsn = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn, connect_timeout=3):
            return None
    except Exception as e:  # noqa: BLE001 - any failure means: not reachable here
        return f"PostgreSQL at {PG_ADMIN_URL.rsplit('@', 1)[-1]} is not reachable ({type(e).__name__})"


def _pg_reachable() -> bool:
    return pg_unreachable() is None


def skip_without_pg(why: str) -> None:
    """Skip a PostgreSQL case, saying why; in CI (``CI=true``), where .ci/run starts PostgreSQL,
    an unreachable server is a failure instead: the suite must not pass on SQLite alone."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{why}; CI=true needs it (.ci/run starts it)", pytrace=False)
    pytest.skip(why)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str | None]:
    """URL of a throwaway PostgreSQL database for this session (None when unreachable)."""
    if not _pg_reachable():
        yield None
        return
    import psycopg

    name = f"lutnas_test_{secrets.token_hex(4)}"
    dsn = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'lutnas.db'}"
    url = request.getfixturevalue("pg_database")
    if url is None:
        skip_without_pg(pg_unreachable() or "PostgreSQL is not reachable")
    return url


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A random-init supernet checkpoint, a tiny synthetic GOT-10k-layout dataset, and one ONNX
    unit cache shared by every server of the session (units depend only on their key)."""
    import torch

    from tracking.checkpoint import save_checkpoint
    from tracking.data import generate_synthetic
    from tracking.space import SearchSpace
    from tracking.supernet import Supernet

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("artifacts")
    torch.manual_seed(0)
    ckpt = save_checkpoint(root / "supernet.pt", Supernet(SearchSpace.paper()), {"note": "random init (tests)"})
    data = generate_synthetic(root / "data", sequences=2, frames=8, seed=0, progress=False)
    return {"checkpoint": ckpt, "data": data, "cache": root / "cache", "root": root}


def service_env(database_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LUTNAS_")}
    env.update({
        "LUTNAS_DATABASE_URL": database_url, "LUTNAS_ADMIN_TOKEN": ADMIN, "LUTNAS_DATA_DIR": str(data_dir),
        "LUTNAS_TORCH_THREADS": "1", "LUTNAS_SCORER_PAIRS": "8", "LUTNAS_SCORER_BN_BATCHES": "1",
        "LUTNAS_SCORER_BN_BATCH_SIZE": "4", "LUTNAS_HEARTBEAT_SECONDS": "0.5", "LUTNAS_HEARTBEAT_TIMEOUT": "6",
        "LUTNAS_POLL_SECONDS": "0.3", "LUTNAS_MISSING_UNITS_RETRY_SECONDS": "1",
        "LUTNAS_MAX_UPLOAD_MB": "64", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


@dataclass
class Service:
    """A live ``lutnas serve --no-worker`` and helpers to start workers and agents beside it."""

    url: str
    env: dict[str, str]
    logs: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(self, args: list[str], name: str, **env: str) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}-{len(self.procs)}.log", "wb")  # noqa: SIM115 - closed with the process
        p = subprocess.Popen(args, env={**self.env, **env}, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
        self.procs.append(p)
        return p

    def worker(self) -> subprocess.Popen[bytes]:
        return self.spawn([str(BIN / "lutnas"), "worker"], "worker")

    def agent(self, token: str, *args: str) -> subprocess.Popen[bytes]:
        # Several agents, a worker and the server share this machine's 2 cores in these tests, so
        # the load check would rightly refuse most measurements; it is tested on its own
        # (test_agent_protocol.py) and off here unless a test asks for it.
        load = () if "--max-other-load" in args else ("--max-other-load", "off")
        return self.spawn([str(BIN / "lutnas-agent"), "--server", self.url, "--token", token, *load, *args], "agent")

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=120)

    def server_paths(self) -> list[str]:
        """Folders of this server that no error body a team receives may name."""
        return [str(Path(p).resolve()) for p in (self.env["LUTNAS_DATA_DIR"], *self.env.get(
            "LUTNAS_DATA_ROOTS", "").split(os.pathsep), Path.home(), sys.prefix, Path(__file__).parents[2]) if p]

    def team(self, name: str) -> httpx.Client:
        with self.admin() as a:
            r = a.post("/v1/teams", json={"name": name})
        assert r.status_code == 201, r.text
        paths = self.server_paths()

        def no_server_path(resp: httpx.Response) -> None:
            # every error a team client of the suite receives is checked, not only the security tests'
            if resp.status_code >= 400:
                body = resp.read().decode("utf-8", "replace")
                leaked = [p for p in paths if p in body]
                assert not leaked, f"{resp.request.method} {resp.request.url.path} -> {resp.status_code} names {leaked}"

        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {r.json()['api_key']}"},
                            timeout=120, event_hooks={"response": [no_server_path]})

    def stop_all(self, since: int = 0) -> None:
        """SIGTERM, then wait (kill after 30 s), every process spawned from index ``since`` on."""
        mine = self.procs[since:]
        for p in reversed(mine):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in mine:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def wait_for(pred: Callable[[], Any], timeout: float = 120.0, interval: float = 0.3, what: str = "condition") -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture(scope="session")
def service(database_url: str, artifacts: dict[str, Path],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One live server per database for the whole session (tests use their own teams)."""
    data_dir = tmp_path_factory.mktemp("data_dir")
    artifacts["cache"].mkdir(exist_ok=True)
    (data_dir / "units").symlink_to(artifacts["cache"], target_is_directory=True)
    port = free_port()
    # teams may register server paths under the test artifacts AND the server's data folder: the
    # server must still keep every team out of the upload folders inside it
    roots = os.pathsep.join([str(artifacts["root"]), str(data_dir)])
    svc = Service(url=f"http://127.0.0.1:{port}", logs=tmp_path_factory.mktemp("logs"),
                  env=service_env(database_url, data_dir, LUTNAS_DATA_ROOTS=roots, LUTNAS_MAX_EXTRACT_MB="8",
                                  LUTNAS_MAX_ARCHIVE_MEMBERS="400"))
    server = svc.spawn([str(BIN / "lutnas"), "serve", "--no-worker", "--port", str(port)], "server")

    def up() -> bool:
        if server.poll() is not None:
            raise AssertionError(f"server exited: {(svc.logs / 'server-0.log').read_text()[-3000:]}")
        try:
            return httpx.get(svc.url + "/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(up, 120, what="the server to answer /healthz")
    try:
        yield svc
    finally:
        svc.stop_all()


@pytest.fixture(autouse=True)
def _stop_what_the_test_started(request: pytest.FixtureRequest) -> Iterator[None]:
    """Workers and agents a test spawns beside the session's server end with that test: a
    leftover worker (with that test's cheap scoring settings) would otherwise claim the next
    tests' searches on the shared database."""
    if "service" not in request.fixturenames:
        yield
        return
    svc: Service = request.getfixturevalue("service")
    started = len(svc.procs)
    yield
    svc.stop_all(since=started)


def register_hardware(client: httpx.Client, name: str, **body: Any) -> dict[str, Any]:
    r = client.post("/v1/hardware", json={"name": name, "kind": "cpu", **body})
    assert r.status_code == 201, r.text
    return r.json()


def agent_token(client: httpx.Client, hardware_id: int, name: str = "agent") -> str:
    r = client.post(f"/v1/hardware/{hardware_id}/agent-tokens", json={"name": name})
    assert r.status_code == 201, r.text
    return r.json()["token"]
